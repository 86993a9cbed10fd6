"""Per-key fair dispatch of bulk work (schema.FILL, JobStore.park/refill), on fakeredis: a key's
bulk pieces sent and not yet stored stay within its window across all its jobs; its further
jobs wait parked, oldest first, and any stored, cancelled, failed or expired piece frees its
slot for the key's next one. Another key's window is its own."""

import fakeredis

from spamq.jobs.schema import QUEUED, parked_key
from spamq.jobs.store import JobStore
from spamq.jobs.store_jobs import StoreJobs
from spamq.storage.splits import InputFile, Split
from worker.sweeper import Sweeper

BULK, WINDOW = "bulk", 4
A, B = "a" * 16, "b" * 16


def parked(store: JobStore, owner: str, chunks: int = 10) -> str:
    """A parked bulk texts job of ``chunks`` chunks (one text each)."""
    job, first = store.jobs.create(["t"] * chunks, chunk_size=1, queue=BULK, owner=owner,
                                   window=16, park=True)
    assert first == [] and store.jobs.get(job.id).chunks_sent == 0
    return job.id


def refill(store: JobStore, owner: str) -> list[tuple[str, int, int]]:
    return store.leases.refill(owner, bulk_queue=BULK, window=WINDOW)


def store_piece(store: JobStore, job_id: str, index: int) -> int | None:
    """Store chunk ``index``; the job's next chunk it sends (None: none)."""
    return store.results.store_chunk_next(job_id, index, [{"label": "ham"}], model_version="v")[1]


def test_a_keys_window_spans_all_its_jobs_and_the_rest_waits_parked_in_order(store):
    jobs = [parked(store, A, chunks=3) for _ in range(4)]
    assert refill(store, A) == [(jobs[0], 0, 3), (jobs[1], 0, 1)]  # 4 pieces: the window
    assert refill(store, A) == []  # full: nothing more until a piece is stored
    assert store.leases.parked_position(jobs[1], A) == 0
    assert store.leases.parked_position(jobs[3], A) == 2
    assert store.leases.parked_position(jobs[0], A) is None  # every piece of it sent
    assert store.jobs.get(jobs[3]).status == QUEUED
    # a stored piece of a job with more to send sends its job's next: the window stays full
    assert store_piece(store, jobs[1], 0) == 1 and refill(store, A) == []
    # a job with nothing left unsent frees its slot: the key's next parked piece goes
    assert store_piece(store, jobs[0], 0) is None
    assert refill(store, A) == [(jobs[1], 2, 3)]
    assert store_piece(store, jobs[0], 1) is None
    assert refill(store, A) == [(jobs[2], 0, 1)]


def test_another_keys_first_pieces_go_at_once_whatever_the_first_key_has_parked(store):
    for _ in range(50):
        parked(store, A)
    assert sum(stop - first for _, first, stop in refill(store, A)) == WINDOW
    mine = parked(store, B, chunks=2)
    assert refill(store, B) == [(mine, 0, 2)]  # not behind A's 496 parked chunks
    assert refill(store, A) == []


def test_cancelling_a_job_frees_its_slots_for_the_keys_next_job(store):
    first, second = parked(store, A), parked(store, A)
    assert refill(store, A) == [(first, 0, WINDOW)]
    assert store.jobs.cancel(first)
    assert refill(store, A) == [(second, 0, WINDOW)]  # the cancelled job's 4 are free
    assert store.leases.parked_position(first, A) is None  # and it left the list


def test_a_failed_or_expired_job_frees_its_slots_too(store):
    jobs = [parked(store, A, chunks=WINDOW) for _ in range(3)]
    assert refill(store, A) == [(jobs[0], 0, WINDOW)]
    store.jobs.fail(jobs[0], "split 0 failed")
    assert refill(store, A) == [(jobs[1], 0, WINDOW)]
    store.jobs.expire(jobs[1])
    assert refill(store, A) == [(jobs[2], 0, WINDOW)]


def test_only_bulk_jobs_count_against_the_window(store):
    store.jobs.create(["t"] * 8, chunk_size=1, queue="interactive", owner=A)  # all 8 sent
    job = parked(store, A)
    assert refill(store, A) == [(job, 0, WINDOW)]


def test_a_resumed_job_resends_its_missing_pieces_and_parks_the_rest(store):
    job, other = parked(store, A), parked(store, A)
    assert refill(store, A) == [(job, 0, WINDOW)]
    store_piece(store, job, 0)  # sends its chunk 4
    store.jobs.cancel(job)
    assert refill(store, A) == [(other, 0, WINDOW)]
    assert store.leases.resume(job, window=16, park=True) == [1, 2, 3, 4]  # sent, not stored
    assert refill(store, A) == []  # the key's window is taken by ``other``
    for i in range(WINDOW):
        assert store_piece(store, other, i) == WINDOW + i  # ``other`` keeps its own going


def test_a_store_job_parks_and_its_splits_are_unparked_like_chunks(store):
    stores = StoreJobs(store)
    files = [InputFile("in/a.jsonl", 600, 1, "jsonl")]
    splits = [Split(i, 0, i * 100, 100) for i in range(6)]
    first_job = parked(store, A)
    job, first = stores.create(files, splits, {"column": "text"}, queue=BULK, owner=A,
                               idempotency_key=None, output="out/1", deadline=None,
                               window=16, quote_pass=False, park=True)
    assert first == [] and store.leases.parked_position(job.id, A) == 1
    assert refill(store, A) == [(first_job, 0, WINDOW)]
    store.jobs.cancel(first_job)
    assert refill(store, A) == [(job.id, 0, WINDOW)]
    outcome, nxt = stores.split_done(job.id, 0, rows=1, rejected=0, nbytes=100,
                                     model_version="v")
    assert (outcome, nxt) == (1, WINDOW)


def test_a_job_whose_quote_pass_is_to_run_is_not_parked_until_planned(store):
    files = [InputFile("in/a.csv", 600, 1, "csv")]
    job, first = StoreJobs(store).create(
        files, [Split(0, 0, 0, 600)], {"column": "text"}, queue=BULK, owner=A,
        idempotency_key=None, output="out/1", deadline=None, window=16, quote_pass=True,
        park=True)
    assert first == [] and store.leases.parked_position(job.id, A) is None
    assert refill(store, A) == []
    store.leases.park(job.id, A)  # what the plan task does once the parities are stored
    assert refill(store, A) == [(job.id, 0, 1)]


def test_the_parked_list_is_named_from_a_key_id_only():
    assert parked_key(A) == f"spamq:owner:{A}:parked"
    assert parked_key(None) == "spamq:owner:-:parked"
    raw = parked_key("x:y\r\n*")
    assert raw.startswith("spamq:owner:") and "x:y" not in raw and len(raw) == 12 + 16 + 7


def test_the_sweeper_unparks_a_keys_work_whose_refill_was_missed(store):
    jobs = [parked(store, A) for _ in range(2)]
    assert refill(store, A) == [(jobs[0], 0, WINDOW)]
    store.jobs.cancel(jobs[0])  # say, by a deadline in a worker that died before refilling
    sent: list[tuple] = []

    def send_refill(owner):
        pieces = refill(store, owner)
        sent.extend(pieces)
        return sum(stop - first for _, first, stop in pieces)

    sweeper = Sweeper(store, lambda job, indices: None, name="w", queues=[BULK], every_s=2,
                      lost_after_s=5, refill=send_refill)
    sweeper.sweep_once()
    assert sent == [(jobs[1], 0, WINDOW)]


def test_parked_jobs_count_a_window_each_for_their_key_only_at_admission(store):
    for _ in range(5):
        parked(store, A)
    refill(store, A)  # the first job's 4 chunks sent, 4 x 4 more parked
    mine = store.leases.load([BULK], A, interactive_queue="interactive", window=WINDOW)
    assert (mine.depth, mine.pieces) == (16, 20)  # the broker (empty here) + its parked
    other = store.leases.load([BULK], B, interactive_queue="interactive", window=WINDOW)
    assert (other.depth, other.pieces) == (0, 0)
    assert store.leases.load([BULK], A, interactive_queue="interactive").pieces == 4  # no window


def test_a_parked_job_shows_queued_with_its_position(tmp_path):
    from api import create_app
    from spamq.settings import Settings

    jobs = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    settings = Settings(chunk_size=2, max_texts_per_request=100, bulk_window_chunks=2,
                        artifact_dir=tmp_path)
    client = create_app(settings, store=jobs, send_task=lambda *a, **k: None).test_client()
    ids = [client.post("/v1/jobs", json={"texts": ["t"] * 8}).get_json()["id"]
           for _ in range(3)]
    views = [client.get(f"/v1/jobs/{i}").get_json() for i in ids]
    assert [v["status"] for v in views] == ["queued"] * 3
    assert [v["queue_position"] for v in views] == [0, 1, 2]  # the first: 2 of 4 chunks sent
    assert jobs.jobs.get(ids[0]).chunks_sent == 2 and jobs.jobs.get(ids[1]).chunks_sent == 0
    client.delete(f"/v1/jobs/{ids[0]}")  # its 2 slots go to the next job at once
    assert jobs.jobs.get(ids[1]).chunks_sent == 2
    assert client.get(f"/v1/jobs/{ids[2]}").get_json()["queue_position"] == 1
