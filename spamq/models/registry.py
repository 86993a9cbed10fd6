"""Model registry on an ArtifactStore: immutable versions, movable aliases, verified pulls.

Layout under the registry root (default ``models``)::

    models/<name>/<version>/{manifest.json, model files...}   immutable, version = manifest hash
    models/<name>/aliases/<alias>.json                        {"version": ..., "updated_at": ...}
    models/<name>/_tmp-<uuid>/                                a push in progress (never listed)
    models/<name>/_records/<version>.json                     promotions of the version, each
                                                              with its gate override reason

A push uploads to ``_tmp-<uuid>``, checks the remote listing, then renames into place, so a
version directory is either absent or complete. A pull downloads into a temporary
directory inside the cache, verifies every file against the manifest and the version id,
then renames it into ``<cache>/<name>/<version>``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from spamq.errors import SpamqError
from spamq.models.manifest import MANIFEST, ManifestError, read_manifest, verify_model_dir
from spamq.storage.artifacts import ArtifactExists, ArtifactStore, artifact_store_from_settings

if TYPE_CHECKING:
    from spamq.settings import Settings

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALIASES = "aliases"
TMP_PREFIX = "_tmp-"
RECORDS = "_records"  # not a valid version name, so never one


class RegistryError(SpamqError, RuntimeError):
    """A registry operation was refused: unknown model/version/alias, or a corrupt artifact."""

    http_status = 503
    code = "unavailable"
    public_message = "the model registry failed (see the log)"


class ModelRefused(RegistryError):
    """A downloaded version does not match its manifest (corrupt or partial): never loaded."""


def _check_name(kind: str, value: str) -> str:
    if not _NAME.match(value) or value == ALIASES:
        raise RegistryError(f"invalid {kind} {value!r}: letters, digits, '.', '_', '-' only")
    return value


class ModelRegistry:
    """Push, list, promote, resolve and pull model versions in one ArtifactStore."""

    def __init__(self, store: ArtifactStore, *, root: str = "models") -> None:
        self.store = store
        self.root = root.strip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """The registry in the settings' store: HDFS when ``hdfs_url`` is set, else
        ``artifact_dir``. Connects to nothing yet."""
        return cls(artifact_store_from_settings(settings))

    def _model(self, name: str) -> str:
        return f"{self.root}/{_check_name('model name', name)}"

    def _version(self, name: str, version: str) -> str:
        return f"{self._model(name)}/{_check_name('version', version)}"

    def _alias(self, name: str, alias: str) -> str:
        return f"{self._model(name)}/{ALIASES}/{_check_name('alias', alias)}.json"

    def push(self, local_dir: Path, *, name: str, verify_hashes: bool = False) -> str:
        """Upload a verified model directory as a new version; return the version id.

        Pushing a version that already exists is a no-op. ``verify_hashes`` reads every
        uploaded file back and hashes it (sizes are always checked; hashes cost a full read).
        """
        local_dir = Path(local_dir)
        version = verify_model_dir(local_dir)
        dest = self._version(name, version)
        if self.store.exists(dest):
            logger.info(
                "push %s/%s: already in %s, nothing to do", name, version, self.store.describe()
            )
            return version
        # Exactly the manifest's files plus the manifest: stray local files are not in a version.
        rels = sorted([*read_manifest(local_dir)["files"], MANIFEST])
        expected = {rel: (local_dir / rel).stat().st_size for rel in rels}
        tmp = f"{self._model(name)}/{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            for rel in rels:
                self.store.upload_file(local_dir / rel, f"{tmp}/{rel}")
            remote = self.store.files(tmp)
            if remote != expected:
                diff = sorted(set(remote.items()) ^ set(expected.items()))
                raise RegistryError(
                    f"push {name}/{version}: uploaded files differ from local: {diff}"
                )
            if verify_hashes:
                manifest = read_manifest(local_dir)
                for rel, want in manifest["files"].items():
                    got = hashlib.sha256(self.store.read_bytes(f"{tmp}/{rel}")).hexdigest()
                    if got != want:
                        raise RegistryError(f"push {name}/{version}: {rel} changed in transit")
            try:
                self.store.rename(tmp, dest)
            except ArtifactExists:
                logger.info("push %s/%s: pushed concurrently by someone else", name, version)
        finally:
            if self.store.exists(tmp):
                self.store.delete(tmp, recursive=True)
        logger.info("pushed %s/%s to %s", name, version, self.store.describe())
        return version

    def list(self, name: str) -> list[str]:
        """Complete versions of a model (in-progress pushes are not listed)."""
        return [
            v
            for v in self.store.list(self._model(name))
            if v not in (ALIASES, RECORDS) and not v.startswith((TMP_PREFIX, "."))
        ]

    def aliases(self, name: str) -> dict[str, str]:
        out = {}
        for fname in self.store.list(f"{self._model(name)}/{ALIASES}"):
            if fname.endswith(".json") and not fname.startswith("."):
                alias = fname.removesuffix(".json")
                out[alias] = self.resolve(name, alias)
        return out

    def promote(self, name: str, version: str, *, alias: str,
                override_reason: str | None = None,
                overridden: Sequence[str] = ()) -> None:
        """Point ``alias`` at an existing version (atomic overwrite of the alias file).

        ``override_reason``: why the gate's refusal (``overridden``: the figures it found
        worse) was overruled; kept in the version's record and the alias file.
        """
        if not self.store.exists(f"{self._version(name, version)}/{MANIFEST}"):
            raise RegistryError(
                f"{name}/{version} is not in {self.store.describe()}; push it first"
            )
        at = datetime.now(UTC).isoformat(timespec="seconds")
        body: dict = {"version": version, "updated_at": at}
        if override_reason:
            body["override_reason"] = override_reason
            record = self.record(name, version)
            record.setdefault("promotions", []).append(
                {"alias": alias, "at": at, "override_reason": override_reason,
                 "overridden": [*overridden]})
            self.store.write_bytes_atomic(self._record(name, version),
                                          json.dumps(record, indent=2).encode())
        self.store.write_bytes_atomic(self._alias(name, alias), json.dumps(body).encode())
        logger.info("alias %s/%s -> %s%s", name, alias, version,
                    " (gate overridden)" if override_reason else "")

    def _record(self, name: str, version: str) -> str:
        return f"{self._model(name)}/{RECORDS}/{_check_name('version', version)}.json"

    def record(self, name: str, version: str) -> dict:
        """The version's record (``promotions`` with override reasons); {} when none."""
        path = self._record(name, version)
        if not self.store.exists(path):
            return {}
        try:
            body = json.loads(self.store.read_bytes(path))
        except ValueError as exc:
            raise RegistryError(f"{path}: record is not valid JSON ({exc})") from exc
        return body if isinstance(body, dict) else {}

    def manifest(self, name: str, ref: str) -> dict:
        """A version's (or alias's) manifest as stored, without pulling the model."""
        path = f"{self._version(name, self.resolve_ref(name, ref))}/{MANIFEST}"
        try:
            return json.loads(self.store.read_bytes(path))
        except ValueError as exc:
            raise RegistryError(f"{path}: manifest is not valid JSON ({exc})") from exc

    def resolve(self, name: str, alias: str) -> str:
        path = self._alias(name, alias)
        if not self.store.exists(path):
            raise RegistryError(f"{name} has no alias {alias!r} in {self.store.describe()}")
        try:
            return _check_name("version", json.loads(self.store.read_bytes(path))["version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"{path}: alias file is not valid ({exc})") from exc

    def resolve_ref(self, name: str, ref: str) -> str:
        """A version id if one by that name exists, else an alias."""
        if self.store.exists(f"{self._version(name, ref)}/{MANIFEST}"):
            return ref
        return self.resolve(name, ref)

    def pull(self, name: str, ref: str, *, cache_dir: Path) -> Path:
        """Download and verify a version (or alias) into ``cache_dir/<name>/<version>``.

        A corrupt or partial download raises RegistryError naming the file and leaves
        nothing in the cache.
        """
        version = self.resolve_ref(name, ref)
        model_cache = Path(cache_dir) / name
        final = model_cache / version
        if final.is_dir():
            try:
                if verify_model_dir(final) == version:
                    return final
            except ManifestError as exc:
                logger.warning("cached %s is damaged (%s): downloading it again", final, exc)
            shutil.rmtree(final)
        model_cache.mkdir(parents=True, exist_ok=True)
        tmp = model_cache / f".tmp-{uuid.uuid4().hex}"
        try:
            self.store.download_dir(self._version(name, version), tmp)
            try:
                got = verify_model_dir(tmp)
            except ManifestError as exc:
                raise ModelRefused(
                    f"refusing {name}/{version} from {self.store.describe()}: {exc}"
                ) from exc
            if got != version:
                raise ModelRefused(
                    f"refusing {name}/{version} from {self.store.describe()}: "
                    f"its manifest is version {got}"
                )
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():  # lost a race with another pull of the same version: fine
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        logger.info("pulled %s/%s into %s", name, version, final)
        return final
