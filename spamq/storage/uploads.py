"""Uploaded files (``POST /v1/jobs`` multipart) in the artifact store: a byte quota per key,
and deletion when the submission is refused or the upload's job has expired.

An upload is ``<tenant root>/<key id>/uploads/<token>/``: its input file and its job's output.
Redis records it from the moment its bytes are counted until its directory is deleted:

- ``spamq:uploads:bytes:<key id>`` (hash): ``<token>`` -> bytes, ``total`` -> their sum, the
  figure held to ``max_upload_bytes_per_key`` (reserved atomically, so two uploads at once
  cannot both slip under the quota);
- ``spamq:uploads:due`` (sorted set): ``<key id>/<token>`` -> when to look at it next;
- ``spamq:uploads:job`` (hash): ``<key id>/<token>`` -> its job's id, once the job is accepted.

A refused submission deletes its upload at once (:meth:`Uploads.discard`). The worker's
sweeper calls :meth:`Uploads.sweep`: an upload due whose job is still in Redis is looked at
again when the job's keys are due to expire; one whose job is gone (expired after
``job_ttl_s``, or never made because the API died mid-submission) is deleted and its bytes
released. A delete that fails is tried again at a later sweep.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import redis

from spamq.errors import InvalidRequest
from spamq.jobs.schema import job_key
from spamq.storage.artifacts import ArtifactError, ArtifactStore

logger = logging.getLogger(__name__)

BYTES_PREFIX = "spamq:uploads:bytes:"
DUE_KEY = "spamq:uploads:due"
JOB_KEY = "spamq:uploads:job"
TOTAL = "total"
NO_OWNER = "-"  # uploads made with auth off: "uploads/<token>", counted under this name
RETRY_S = 60.0  # a failed delete is tried again this much later
_OWNER = re.compile(r"^(?:[0-9a-f]{16}|-)$")
_TOKEN = re.compile(r"^[0-9a-f]{16}$")

# KEYS: bytes hash, due set. ARGV: token, bytes, quota, due at, member. 1: reserved, 0: over.
_RESERVE = """
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local n, quota = tonumber(ARGV[2]), tonumber(ARGV[3])
if total + n > quota then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], n)
redis.call('HINCRBY', KEYS[1], 'total', n)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
"""

# KEYS: bytes hash, due set, job hash. ARGV: token, member. Forget the upload, free its bytes.
_RELEASE = """
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HDEL', KEYS[1], ARGV[1])
if n > 0 then redis.call('HINCRBY', KEYS[1], 'total', -n) end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return n
"""


@dataclass(frozen=True)
class Upload:
    """One upload: its key id (or ``-``) and its random token, both checked."""

    owner: str
    token: str

    def __post_init__(self) -> None:
        if not _OWNER.match(self.owner) or not _TOKEN.match(self.token):
            raise ValueError("not an upload name")

    @classmethod
    def of(cls, owner: str | None, token: str) -> Upload:
        return cls(owner or NO_OWNER, token)

    @classmethod
    def parse(cls, member: str) -> Upload:
        owner, _, token = member.partition("/")
        return cls(owner, token)

    @property
    def member(self) -> str:
        return f"{self.owner}/{self.token}"

    def directory(self, tenant_root: str) -> str:
        """The upload's directory in the store (its input file and its job's output)."""
        home = "" if self.owner == NO_OWNER else f"{tenant_root}/{self.owner}/"
        return f"{home}uploads/{self.token}"


class Uploads:
    def __init__(self, client: redis.Redis, artifacts: ArtifactStore, *, tenant_root: str,
                 quota_bytes: int, ttl_s: float) -> None:
        self._r, self._artifacts = client, artifacts
        self._root, self._quota, self._ttl = tenant_root, quota_bytes, ttl_s
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    def reserve(self, upload: Upload, size: int) -> None:
        """Count ``size`` bytes against the key's quota before the file is stored, or a 413
        naming ``file``. Until :meth:`keep` names its job, the upload is deleted at the
        next sweep after ``ttl_s`` (the API may die before it can say)."""
        due = time.time() + self._ttl
        ok = self._reserve(keys=[BYTES_PREFIX + upload.owner, DUE_KEY],
                           args=[upload.token, size, self._quota, repr(due), upload.member])
        if not int(ok):
            raise InvalidRequest(
                "file", f"this key's stored uploads would pass {self._quota} bytes; an upload "
                "is deleted when its job expires, then there is room again", status=413)

    def keep(self, upload: Upload, job_id: str) -> None:
        """The upload's job was accepted: the upload stays while the job does."""
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(JOB_KEY, upload.member, job_id)
        pipe.zadd(DUE_KEY, {upload.member: time.time() + self._ttl}, xx=True)
        pipe.execute()

    def discard(self, upload: Upload) -> bool:
        """Delete the upload's directory and release its bytes; False (and retried at a later
        sweep) when the store could not delete it."""
        try:
            self._artifacts.delete(upload.directory(self._root), recursive=True)
        except ArtifactError as exc:
            logger.warning("upload not deleted, retried later: %s", exc)
            self._r.zadd(DUE_KEY, {upload.member: time.time() + RETRY_S}, xx=True)
            return False
        self._release(keys=[BYTES_PREFIX + upload.owner, DUE_KEY, JOB_KEY],
                      args=[upload.token, upload.member])
        return True

    def held_bytes(self, owner: str | None) -> int:
        return int(self._r.hget(BYTES_PREFIX + (owner or NO_OWNER), TOTAL) or 0)

    def sweep(self, now: float | None = None, *, limit: int = 100) -> int:
        """Look at the uploads due; delete those whose job is gone. Returns how many."""
        now = time.time() if now is None else now
        deleted = 0
        for raw in self._r.zrangebyscore(DUE_KEY, "-inf", now, start=0, num=limit):
            member = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                upload = Upload.parse(member)
            except ValueError:  # not ours: never a path from it
                self._r.zrem(DUE_KEY, member)
                continue
            job_id = self._r.hget(JOB_KEY, member)
            if job_id is not None:
                left_ms = self._r.pttl(job_key(job_id.decode() if isinstance(job_id, bytes)
                                               else str(job_id)))
                if left_ms != -2:  # the job is still there: look again when it is due to go
                    wait = left_ms / 1000 if left_ms > 0 else self._ttl
                    self._r.zadd(DUE_KEY, {member: now + wait + 1}, xx=True)
                    continue
            if self.discard(upload):
                deleted += 1
                logger.info("deleted upload %s (its job is gone)", upload.token)
        return deleted
