"""The Redis schema in one place: every key, every job status, and the Lua scripts.

Keys (all expire after the configured retention):
  spamq:job:<id>             hash: status, timestamps, counts, model version, error
  spamq:job:<id>:texts       list: the submitted texts, in order
  spamq:job:<id>:results     hash: chunk index -> JSON list of that chunk's results
  spamq:job:<id>:finished    list: one element pushed when the job ends (BLPOP to wait)
  spamq:job:<id>:<part>      a store job's records (files, splits, spec, parts, split_rows,
                             split_workers, progress: spamq/jobs/store_jobs.py)
  spamq:lease:<id>:<chunk>   ``<worker>|<token>`` of the attempt scoring a chunk
  spamq:idem:<sha256>        the job id created for an Idempotency-Key (hash of owner + key)
  spamq:owner:<key id>:jobs  set: the key's jobs not known to have ended (fair share)
  spamq:owner:<key id>:parked  list: the key's bulk jobs with pieces not yet sent, oldest
                             first (FILL sends them within the key's window)
  spamq:owners:busy          zset: key ids that submitted lately -> until when (queue shares)
  spamq:output:<sha256>      the job id that reserved an output directory (hash of the path)
  spamq:worker:<name>        a worker's heartbeat; spamq:batching:<name> its batch stats
  spamq:stats:jobs           hash: counts of job events, for /metrics
  spamq:jobs:active          set: jobs with chunks still to score (worker/sweeper.py)

Every key is built here, from a checked job id (32 lowercase hex, :func:`check_job_id`), a
key id (16 hex, from its hash), a worker name of our own, or a sha256: never from a client's
raw input. The scripts name statuses as ``$DONE`` etc. and :func:`lua` fills them in from the
Python constants, so the two cannot drift apart. spamq runs on one Redis, not a cluster, so
a script may name a fixed key (the stats hash) beside its KEYS.
"""

from __future__ import annotations

import hashlib
import re
from string import Template

from spamq.errors import SpamqError

PREFIX = "spamq:job:"
WORKER_PREFIX = "spamq:worker:"
IDEM_PREFIX = "spamq:idem:"
BATCH_STATS_PREFIX = "spamq:batching:"
# Counts of job events (submitted, done, failed, cancelled) for /metrics. The Lua scripts
# name it literally: spamq runs on one Redis, not a cluster.
STATS_KEY = "spamq:stats:jobs"
# Jobs with chunks still to score, for the worker's stall sweeper (worker/sweeper.py).
ACTIVE_KEY = "spamq:jobs:active"
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
EXPIRED = "expired"  # its deadline passed before every chunk was scored
STORE = "store"  # a job over files of the artifact store, scored split by split (store_jobs.py)
LEASE_PREFIX = "spamq:lease:"
OWNER_PREFIX = "spamq:owner:"
# Keys that submitted lately (zset: key id -> until when it counts), for the queue's shares.
BUSY_OWNERS_KEY = "spamq:owners:busy"
OUTPUT_PREFIX = "spamq:output:"
SWEEP_TURN_KEY = "spamq:sweep:turn"
ENDED = (DONE, FAILED, CANCELLED, EXPIRED)  # the one set of statuses that end a job


def should_stop(status: str | None) -> bool:
    """Whether work on a job in ``status`` stops (a task skips its chunk or split, a client
    stops polling): once it has ended, however it ended. None (no such job) is the caller's."""
    return status in ENDED


RESUMABLE = (FAILED, CANCELLED, EXPIRED)  # a resubmission resumes these
_JOB_ID = re.compile(r"[0-9a-f]{32}")


class JobNotFound(SpamqError, KeyError):
    """No such job, or it expired (or another key's: answered alike)."""

    http_status = 404
    code = "not_found"
    public_message = "no such job (unknown or expired)"


def check_job_id(job_id: object) -> str:
    """``job_id`` if it has the form of a job id (32 lowercase hex), else JobNotFound.

    Every Redis key naming a job goes through here, so no client string reaches a key.
    """
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise JobNotFound("")
    return job_id


def digest(*parts: str) -> str:
    """sha256 of ``parts`` (NUL-separated): how client strings become parts of Redis keys."""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def job_key(job_id: str, part: str = "") -> str:
    """``spamq:job:<id>`` or ``spamq:job:<id>:<part>``, for a checked job id."""
    base = PREFIX + check_job_id(job_id)
    return f"{base}:{part}" if part else base


def job_keys(job_id: str) -> tuple[str, str, str, str]:
    """The job hash and its texts, results and finished keys."""
    return (job_key(job_id), job_key(job_id, "texts"), job_key(job_id, "results"),
            job_key(job_id, "finished"))


def lease_key(job_id: str, chunk: int) -> str:
    return f"{LEASE_PREFIX}{check_job_id(job_id)}:{int(chunk)}"


def idem_key(owner: str | None, idempotency_key: str) -> str:
    return IDEM_PREFIX + digest(owner or "", idempotency_key)


def owner_key(owner: str | None) -> str:
    return f"{OWNER_PREFIX}{owner or '-'}:jobs"  # a key id: 16 hex digits, never raw input


_KEY_ID = re.compile(r"-|[0-9a-f]{16}")


def parked_key(owner: str | None) -> str:
    """The key's list of parked bulk jobs: its key id ('-' for none), or a digest of anything
    else (never raw input in a key name)."""
    key = owner or "-"
    return f"{OWNER_PREFIX}{key if _KEY_ID.fullmatch(key) else digest(key)[:16]}:parked"


def output_key(output: str) -> str:
    return OUTPUT_PREFIX + digest(output)


def lua(script: str) -> str:
    """A script with its ``$STATUS`` and ``$STATS_KEY`` placeholders filled in."""
    return Template(script).substitute(
        QUEUED=QUEUED, RUNNING=RUNNING, DONE=DONE, FAILED=FAILED, CANCELLED=CANCELLED,
        EXPIRED=EXPIRED, STATS_KEY=STATS_KEY, ACTIVE_KEY=ACTIVE_KEY,
    )


def _lua_set(name: str, statuses: tuple[str, ...]) -> str:
    """``local NAME = {['done'] = true, ...}``: a set of statuses for a script."""
    return f"local {name} = {{" + ", ".join(f"['{st}'] = true" for st in statuses) + "}\n"


# The statuses that end a job, for the Lua scripts (generated from ENDED).
_LUA_ENDED = _lua_set("ENDED", ENDED)

# The one way a job becomes done (both scripts below): status and time, the stats count,
# and the element that wakes whoever waits on the finished list.
_MARK_DONE = _LUA_ENDED + """
local function mark_done(job, finished, now, ttl)
  redis.call('HSET', job, 'status', '$DONE', 'finished_at', now)
  redis.call('SREM', '$ACTIVE_KEY', redis.call('HGET', job, 'id'))  -- the sweeper skips it
  redis.call('HINCRBY', '$STATS_KEY', '$DONE', 1)
  redis.call('RPUSH', finished, '$DONE')
  redis.call('EXPIRE', finished, ttl)
end
"""

# For the scripts that store a piece of work (a chunk; a store job's split), after
# _LUA_ENDED: count_piece records it; next_unsent marks the job's next unsent piece sent (-1:
# none is due). Each stored piece sends the next, so a bulk job keeps a window queued.
_LUA_NEXT = """
-- a piece of work was stored: count it, note the time and the model; queued -> running
local function count_piece(job, now, version)
  local pieces = redis.call('HINCRBY', job, 'chunks_done', 1)
  redis.call('HSET', job, 'progress_at', now)
  if version ~= '' then redis.call('HSET', job, 'model_version', version) end
  if redis.call('HGET', job, 'started_at') == '' then redis.call('HSET', job, 'started_at', now) end
  local status = redis.call('HGET', job, 'status')
  if status == '$QUEUED' then redis.call('HSET', job, 'status', '$RUNNING') end
  local total = tonumber(redis.call('HGET', job, 'chunks_total'))
  return pieces, total, status
end

local function next_unsent(job, status)
  local total = tonumber(redis.call('HGET', job, 'chunks_total'))
  local sent = tonumber(redis.call('HGET', job, 'chunks_sent') or total)
  if sent < total and not ENDED[status] then
    redis.call('HINCRBY', job, 'chunks_sent', 1)
    return sent
  end
  return -1
end
"""

# KEYS: job, results, finished. ARGV: chunk index, results json, n items, version, now, ttl.
# Returns {outcome, next}: outcome -1 no such job, 0 already stored, 1 stored now; next is the
# index of the job's next unsent chunk, which the caller sends now (a bulk job keeps only a
# window of chunks queued, so jobs of many keys interleave in the queue), or -1.
STORE_CHUNK = lua(_MARK_DONE + _LUA_NEXT + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, -1} end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return {0, -1} end
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('HINCRBY', KEYS[1], 'done', ARGV[3])
local chunks, total, status = count_piece(KEYS[1], ARGV[5], ARGV[4])
if chunks == total and not ENDED[status] then
  mark_done(KEYS[1], KEYS[3], ARGV[5], ARGV[6])
end
return {1, next_unsent(KEYS[1], status)}
""")

# KEYS: job, finished. ARGV: error, now, ttl
FAIL = lua(_LUA_ENDED + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ENDED[redis.call('HGET', KEYS[1], 'status')] then return 0 end
redis.call('HSET', KEYS[1], 'status', '$FAILED', 'error', ARGV[1], 'finished_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'chunks_failed', 1)
redis.call('HINCRBY', '$STATS_KEY', '$FAILED', 1)
redis.call('RPUSH', KEYS[2], '$FAILED')
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
""")

# KEYS: job, finished. ARGV: now, ttl, final status (cancelled or expired)
CANCEL = lua(_LUA_ENDED + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ENDED[redis.call('HGET', KEYS[1], 'status')] then return 0 end
local final = ARGV[3]
redis.call('HSET', KEYS[1], 'status', final, 'finished_at', ARGV[1])
if final == '$EXPIRED' then
  redis.call('HSET', KEYS[1], 'error', 'deadline passed before every chunk was scored')
end
redis.call('HINCRBY', '$STATS_KEY', final, 1)
redis.call('RPUSH', KEYS[2], '$CANCELLED')
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
""")

# KEYS: job, finished. ARGV: deadline ('' for none), now. A failed, cancelled or expired job
# goes back to running (its missing chunks are re-sent), with the resubmission's deadline.
RESUME = lua(_lua_set("RESUMABLE", RESUMABLE) + """
local status = redis.call('HGET', KEYS[1], 'status')
if not RESUMABLE[status] then return 0 end
redis.call('HSET', KEYS[1], 'status', '$RUNNING', 'error', '', 'finished_at', '',
           'deadline', ARGV[1], 'progress_at', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
""")

# KEYS: job. ARGV: n. Mark up to n more chunks as sent; returns {first, stop} to send now.
ADVANCE = lua("""
local total = tonumber(redis.call('HGET', KEYS[1], 'chunks_total'))
local sent = tonumber(redis.call('HGET', KEYS[1], 'chunks_sent') or total)
local stop = math.min(total, sent + tonumber(ARGV[1]))
if stop > sent then redis.call('HSET', KEYS[1], 'chunks_sent', stop) end
return {sent, stop}
""")

# KEYS: job. ARGV: now
START = lua("""
if redis.call('HGET', KEYS[1], 'status') == '$QUEUED' then
  redis.call('HSET', KEYS[1], 'status', '$RUNNING', 'started_at', ARGV[1], 'progress_at', ARGV[1])
end
return 1
""")

# KEYS: the owner's job set, the busy-keys zset, then the broker queues to measure.
# ARGV: the job key prefix, the owner's id ('-' for none), now, how long a submitting key
# counts as active (s), the interactive queue's name. What a submission is admitted by
# (api/limits.py), in one call: {messages in the queues, the key's pieces of work sent and
# not yet stored (its share of the queue), its rows not yet scored, those of them on the
# interactive queue, keys active now (the caller included)}. A store job counts its rows
# still to read: the input bytes left times rows per byte, as its scored splits show (at
# first its estimate, ``est_rows``); a store job still planning counts one piece. Ended or
# expired jobs leave the owner's set on the way; the caller joins the busy keys for ARGV[4]
# seconds. ARGV[6]: the bulk window (0: none): a bulk job with pieces not yet sent (parked,
# FILL) counts a window of them, as if queued (at least ``min(window, pieces not stored)``),
# and those the key has parked are added to the depth it is judged by: the key that floods
# sees its own backlog as queued, another key the broker as it is.
ADMISSION = lua(_LUA_ENDED + """
local depth, window = 0, tonumber(ARGV[6]) or 0
for i = 3, #KEYS do depth = depth + redis.call('LLEN', KEYS[i]) end
local pieces, pending, interactive = 0, 0, 0
local fields = {'status', 'total', 'done', 'kind', 'chunks_sent', 'chunks_done', 'queue',
                'bytes_total', 'bytes_done', 'est_rows', 'rejected', 'chunks_total'}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HMGET', ARGV[1] .. id, unpack(fields))
  if v[1] == false or ENDED[v[1]] then
    redis.call('SREM', KEYS[1], id)
  else
    local done = tonumber(v[3]) or 0
    local sent, stored = tonumber(v[5]) or 0, tonumber(v[6]) or 0
    local rows
    if v[4] == 'store' then
      local total, read = tonumber(v[8]) or 0, tonumber(v[9]) or 0
      local seen = done + (tonumber(v[11]) or 0)
      if read > 0 then
        rows = math.floor((total - read) * seen / read)
      else
        rows = math.max(0, (tonumber(v[10]) or 0) - done)
      end
      if sent == 0 and (tonumber(v[12]) or 0) == 0 then sent = 1 end  -- its plan task is queued
    else
      rows = tonumber(v[2]) - done
    end
    local flight = math.max(0, sent - stored)
    local total = tonumber(v[12]) or 0
    if window > 0 and sent < total and v[7] ~= ARGV[5] then
      local queued = math.max(flight, math.min(window, total - stored))
      depth = depth + queued - flight
      flight = queued
    end
    pieces = pieces + flight
    pending = pending + math.max(0, rows)
    if v[7] == ARGV[5] then interactive = interactive + math.max(0, rows) end
  end
end
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2])
local active = redis.call('ZCARD', KEYS[2])
return {depth, pieces, pending, interactive, active}
""")


# KEYS: the owner's job set, the owner's parked list. ARGV: the job key prefix, the bulk
# queue's name, the key's window (pieces), now. Per-key fair dispatch of bulk work: the key's
# pieces sent and not yet stored (chunks_sent - chunks_done over its jobs on the bulk queue,
# all of them together) stay within its window. While they are fewer, pieces are taken from
# the parked list's head job (marked sent, its progress_at set: it moved), the next job once
# it has none left unsent; an ended, gone or planning job leaves the list. Returns what to
# send now as a flat list: job id, first piece, stop (exclusive), ... So the broker holds at
# most (keys with bulk work) x (window) bulk messages, and a key's first piece waits behind
# at most that many, not behind everything another key submitted. Counting from the jobs
# themselves (not a counter) means a cancelled, failed or expired job frees its slots at
# once, and nothing can drift.
FILL = lua(_LUA_ENDED + """
local cap, pending = tonumber(ARGV[3]), 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HMGET', ARGV[1] .. id, 'status', 'queue', 'chunks_sent', 'chunks_done')
  if v[1] == false or ENDED[v[1]] then
    redis.call('SREM', KEYS[1], id)
  elseif v[2] == ARGV[2] then
    pending = pending + math.max(0, (tonumber(v[3]) or 0) - (tonumber(v[4]) or 0))
  end
end
local out = {}
while pending < cap do
  local id = redis.call('LINDEX', KEYS[2], 0)
  if not id then break end
  local job = ARGV[1] .. id
  local v = redis.call('HMGET', job, 'status', 'chunks_total', 'chunks_sent', 'planning')
  local total, first = tonumber(v[2]) or 0, tonumber(v[3]) or 0
  if v[1] == false or ENDED[v[1]] or v[4] == '1' or first >= total then
    redis.call('LPOP', KEYS[2])
  else
    local stop = math.min(total, first + cap - pending)
    redis.call('HSET', job, 'chunks_sent', stop, 'progress_at', ARGV[4])
    table.insert(out, id)
    table.insert(out, first)
    table.insert(out, stop)
    pending = pending + stop - first
    if stop >= total then redis.call('LPOP', KEYS[2]) end
  end
end
return out
""")


# KEYS: job, finished. ARGV: now, ttl. A running job whose output is complete becomes done.
OUTPUT_DONE = lua(_MARK_DONE + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'status') ~= '$RUNNING' then return 0 end
mark_done(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return 1
""")


# KEYS: lease. ARGV: token, ttl ms. Renew the lease only while this attempt holds it.
RENEW = lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
""")

# KEYS: key. ARGV: value. Delete the key only if it still holds this value (a lease held by
# this attempt, an Idempotency-Key or output reservation naming this job).
RELEASE = lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

# KEYS: job, parts, split_rows, progress, split_workers. ARGV: split, rows, rejected, bytes,
# version, now, ttl, worker (the committing worker's name; '' records none).
# Returns {outcome, next}: outcome -1 no such job, 0 already committed, 1 committed, 2 committed
# and it was the job's last split (the caller writes _SUCCESS, then marks the job done); next:
# the next unsent split to send now, or -1.
SPLIT_DONE = lua(_LUA_ENDED + _LUA_NEXT + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, -1} end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return {0, -1} end
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2] .. ',' .. ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[7])
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[8])
  redis.call('EXPIRE', KEYS[5], ARGV[7])
end
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'done', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'total', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'rejected', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'bytes_done', ARGV[4])
local splits, total, status = count_piece(KEYS[1], ARGV[6], ARGV[5])
local nxt = next_unsent(KEYS[1], status)
if splits == total and not ENDED[status] then return {2, nxt} end
return {1, nxt}
""")


# --- Webhooks (issue 15, spamq/webhooks/outbox.py) -------------------------------------------
# spamq:job:<id>:webhook           hash: url, events (JSON), key_id, gone (a 410 stops the job's)
# spamq:job:<id>:webhook_attempts  list: one JSON record per delivery attempt (bounded, job TTL)
# spamq:job:<id>:webhook_progress  set NX for webhook_progress_interval_s: progress throttle
# spamq:webhook:<event id>         hash: an undelivered event (type, job_id, key_id, url, body,
#                                  attempts, base, lease); deleted once delivered or gone
# spamq:webhooks:due:<lane>        zset, one per API key (its lane, :func:`webhook_lane`): event
#                                  id -> due time; while claimed, its lease's end
# spamq:webhooks:lanes             zset: lane -> the earliest due time in it (lanes with no
#                                  event are removed); the deliverer serves the lanes due now in
#                                  turn, at most a few attempts in flight per lane
# spamq:webhooks:due               zset: event id -> due time, of the outbox before lanes; the
#                                  deliverer moves its events into their lanes at start
# spamq:webhooks:pending           zset: event id -> enqueue time (age of the oldest undelivered)
# spamq:webhooks:dead              zset: event id -> time it went to the dead letters
# spamq:webhooks:stats             hash: outcome (delivered, retry, gone, dead) -> count
# spamq:webhooks:watch             set: ids of jobs with a webhook whose end is not yet enqueued
#                                  (spamq/webhooks/watch.py)
WEBHOOK_EVENT_PREFIX = "spamq:webhook:"
WEBHOOK_LANE_PREFIX = "spamq:webhooks:due:"
WEBHOOK_LANES_KEY = "spamq:webhooks:lanes"
WEBHOOK_DUE_KEY = "spamq:webhooks:due"  # before lanes: read only to move its events
WEBHOOK_PENDING_KEY = "spamq:webhooks:pending"
WEBHOOK_DEAD_KEY = "spamq:webhooks:dead"
WEBHOOK_STATS_KEY = "spamq:webhooks:stats"
WEBHOOK_WATCH_KEY = "spamq:webhooks:watch"
EVENT_ID = re.compile(r"msg_[0-9a-f]{32}")
_LANE = re.compile(r"-|[0-9a-f]{16}")


class EventNotFound(SpamqError, KeyError):
    """No such webhook event (or not of the form of one)."""

    http_status = 404
    code = "not_found"
    public_message = "no such webhook event"


def check_event_id(event_id: object) -> str:
    """``event_id`` if it has the form of one of ours (``msg_`` + 32 hex), else EventNotFound."""
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        raise EventNotFound("")
    return event_id


def webhook_event_key(event_id: str) -> str:
    return WEBHOOK_EVENT_PREFIX + check_event_id(event_id)


def webhook_lane(key_id: str) -> str:
    """The delivery lane of a key's events: its key id ('-' with authentication off), or a
    digest of anything else (never raw input in a key name)."""
    return key_id if _LANE.fullmatch(key_id) else digest(key_id)[:16]


def webhook_due_key(lane: str) -> str:
    if not _LANE.fullmatch(lane):
        raise ValueError("not a webhook lane")
    return WEBHOOK_LANE_PREFIX + lane


def webhook_keys(job_id: str) -> tuple[str, str, str]:
    """A job's webhook subscription, its attempt records and its progress throttle."""
    return (job_key(job_id, "webhook"), job_key(job_id, "webhook_attempts"),
            job_key(job_id, "webhook_progress"))


# Lua: the lane's score in the lanes zset is its earliest due time; a lane left empty leaves.
_WEBHOOK_REINDEX = """
local function reindex(lanes, due, lane)
  local head = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
  if head[1] then redis.call('ZADD', lanes, head[2], lane) else redis.call('ZREM', lanes, lane) end
end
"""

# KEYS: event, lane, pending, watch, lanes. ARGV: id, now, job id ('' for none), lane name,
# then the event's field/value pairs. Store the event and make it due now, unless its id is
# stored already; with a job id, only if that job is still watched, which it leaves in the
# same step (a job's end is enqueued once, however many deliverers watch it). 1 enqueued, 0 not.
WEBHOOK_ENQUEUE = _WEBHOOK_REINDEX + """
if ARGV[3] ~= '' and redis.call('SREM', KEYS[4], ARGV[3]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
reindex(KEYS[5], KEYS[2], ARGV[4])
return 1
"""

# KEYS: lanes. ARGV: now, lease end, n, lease token, cap per lane, lanes looked at, then
# (lane, attempts in flight) pairs of this deliverer. Up to n due events, taken in turns: one
# from each lane due now (oldest head first) per round, skipping lanes with ``cap`` attempts in
# flight, until n or none is left. Each taken event is pushed to its lease's end (another
# deliverer takes it then, if this one dies), its attempt counted and the token set. Returns
# the ids. An id whose event hash is gone is dropped.
WEBHOOK_CLAIM = _WEBHOOK_REINDEX + f"""
local now, n, cap = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[5])
local busy = {{}}
for i = 7, #ARGV, 2 do busy[ARGV[i]] = tonumber(ARGV[i + 1]) end
local lanes = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[6])
local out = {{}}
local more = true
while more and #out < n do
  more = false
  for _, lane in ipairs(lanes) do
    if #out >= n then break end
    if (busy[lane] or 0) < cap then
      local due = '{WEBHOOK_LANE_PREFIX}' .. lane
      local id = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, 1)[1]
      if id then
        local ev = '{WEBHOOK_EVENT_PREFIX}' .. id
        if redis.call('EXISTS', ev) == 0 then
          redis.call('ZREM', due, id)
        else
          redis.call('ZADD', due, ARGV[2], id)
          redis.call('HINCRBY', ev, 'attempts', 1)
          redis.call('HSET', ev, 'lease', ARGV[4])
          table.insert(out, id)
          busy[lane] = (busy[lane] or 0) + 1
        end
        more = true
      end
      reindex(KEYS[1], due, lane)
    end
  end
end
return out
"""

# KEYS: event, lane, pending, dead, attempts, stats, job webhook, lanes. ARGV: id, token,
# outcome, next due, attempt record, records kept, job ttl, now, dead ttl, lane name. Only the
# lease holder finishes an attempt (0 otherwise): retry -> due again; dead -> dead letters;
# delivered or gone -> the event is deleted (gone also marks the job's webhook gone).
WEBHOOK_FINISH = _WEBHOOK_REINDEX + """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
redis.call('RPUSH', KEYS[5], ARGV[5])
redis.call('LTRIM', KEYS[5], -tonumber(ARGV[6]), -1)
redis.call('EXPIRE', KEYS[5], ARGV[7])
redis.call('HINCRBY', KEYS[6], ARGV[3], 1)
if ARGV[3] == 'retry' then
  redis.call('HSET', KEYS[1], 'lease', '')
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  reindex(KEYS[8], KEYS[2], ARGV[10])
  return 1
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
reindex(KEYS[8], KEYS[2], ARGV[10])
if ARGV[3] == 'dead' then
  redis.call('HSET', KEYS[1], 'lease', '')
  redis.call('ZADD', KEYS[4], ARGV[8], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[9])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[8] - ARGV[9])
else
  redis.call('DEL', KEYS[1])
  if ARGV[3] == 'gone' and redis.call('EXISTS', KEYS[7]) == 1 then
    redis.call('HSET', KEYS[7], 'gone', ARGV[8])
  end
end
return 1
"""

# KEYS: event, lane, pending, dead, lanes. ARGV: id, now, lane name. A dead event back in the
# outbox with a new budget of attempts (numbering goes on). 1 resent, 0 not a dead letter,
# -1 expired.
WEBHOOK_RESEND = _WEBHOOK_REINDEX + """
if redis.call('ZREM', KEYS[4], ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], 'base', redis.call('HGET', KEYS[1], 'attempts'), 'lease', '')
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
reindex(KEYS[5], KEYS[2], ARGV[3])
return 1
"""

# KEYS: the old due zset, lane, lanes. ARGV: id, lane name. An event of the outbox before
# lanes moved into its lane with its due time (0 if it was moved already).
WEBHOOK_MOVE = _WEBHOOK_REINDEX + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], score, ARGV[1])
reindex(KEYS[3], KEYS[2], ARGV[2])
return 1
"""
# --- end webhooks ---
