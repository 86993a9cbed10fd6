"""All configuration, in one typed place: environment variables prefixed ``SPAMQ_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob of spamq. Read once per process by :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="SPAMQ_", extra="ignore")

    # Redis: broker, job store and worker heartbeats.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = 2.0
    # Redis Sentinel (spamq/redis_client.py): "host:port,host:port,..." of the sentinels. When
    # set, every Redis client and Celery's broker ask them for the master named redis_master;
    # redis_url then gives only the password and the db number (its host is not used).
    redis_sentinels: str = Field(default="", pattern=r"^$|^[^,:\s]+:\d+(,[^,:\s]+:\d+)*$")
    redis_master: str = Field(default="mymaster", pattern=r"^[A-Za-z0-9._-]+$")

    # Jobs
    job_ttl_s: int = Field(default=24 * 3600, ge=60, description="retention of jobs and results")
    max_texts_per_request: int = Field(default=5000, ge=1)
    max_chars_per_text: int = Field(default=5000, ge=1)
    chunk_size: int = Field(default=256, ge=1, description="texts per Celery task")
    predict_timeout_s: float = Field(default=10.0, gt=0)
    # Coalescing at the edge (api/coalesce.py): single-chunk interactive jobs submitted while
    # this API process is publishing (or within the window) share one Celery message.
    coalesce: bool = True
    coalesce_window_s: float = Field(default=0.0, ge=0.0, le=0.001,
                                     description="extra wait before a publish; 0: none")
    coalesce_max_jobs: int = Field(default=64, ge=1, description="jobs per coalesced message")
    interactive_queue: str = "spamq.interactive"
    bulk_queue: str = "spamq.bulk"
    max_texts_per_job: int = Field(default=1_000_000, ge=1, description="rows of an uploaded file")
    max_upload_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    max_upload_bytes_per_key: int = Field(
        default=4 * 1024 * 1024 * 1024, ge=1,
        description="bytes of uploaded files a key may hold in the store at once (an upload "
                    "is deleted when its submission is refused or its job has expired)")
    results_page_max: int = Field(default=1000, ge=1,
                                  description="largest ?limit= of a results page")

    # Model and runner
    model_dir: Path = REPO_ROOT / "weights" / "default"
    max_length: int = Field(default=256, ge=8, le=512)
    batch_size: int = Field(default=32, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto: bf16 on CUDA; on a CPU with AVX512-BF16/AMX, bf16mm (bf16 matmuls, fp32 elsewhere,
    # batch-invariant) where a probe pass at start measures it faster than fp32, else fp32
    # (spamq/models/precision.py, bench/precision.py). int8row: batch-invariant int8, 0.006 F1.
    # int8 (per-batch activation scales) and bf16 are not batch-invariant.
    precision: Literal["auto", "fp32", "bf16", "int8", "fp16w", "bf16mm", "int8row"] = "auto"
    # the forward pass traced to TorchScript (spamq/models/loader.py): same scores, less Python per
    # pass, the GIL released while it runs; false serves the eager transformers model
    torchscript: bool = True
    torch_threads: int | None = Field(default=None, ge=1,
                                      description="default: cores / concurrency")
    # OMP_WAIT_POLICY of a worker process (set before torch loads, worker/celery_app.py).
    # passive: a torch thread waiting for the others sleeps. active (OpenMP's default) spins,
    # which burns the CPU the API, Redis and Celery share with the model whenever one torch
    # thread is descheduled: on 2 loaded vCPUs a batch-1 pass cost 356 ms of CPU spinning
    # against 16 ms passive.
    omp_wait_policy: Literal["passive", "active"] = "passive"
    worker_pool: Literal["solo", "prefork", "threads"] = "threads"
    worker_concurrency: int = Field(default=32, ge=1, description="tasks in flight per worker")
    # `spamq worker` runs this many worker processes (Celery nodes <name>-1..N, each loading
    # its own model; torch threads cores / N unless torch_threads is set). CPU: 1. CUDA: 1
    # until measured on a card (spamq/cli/processes.py).
    worker_processes: int = Field(default=1, ge=1, description="processes per `spamq worker`")
    # BENCH ONLY (`python -m bench`'s null-model leg): the forward pass returns zero logits, so
    # every score is 0.5 and the rest of the worker's path is measured alone. Never on a service.
    null_model: bool = False
    # Dynamic batching (worker/batcher.py): one forward pass serves many tasks.
    batch_fit_gpu: bool = Field(default=True, description="on CUDA: size passes to GPU memory")
    batch_max_tokens: int = Field(default=1024, ge=64, description="rows x padded width per pass")
    batch_max_wait_ms: float = Field(default=2.0, ge=0,
                                     description="longest a row waits for company")
    batch_bulk_max_tokens: int = Field(
        default=256, ge=16, description="per bulk pass: bounds an interactive row's wait"
    )
    # Admission control under bulk (worker/batcher.py): bulk passes on a thread of their own
    # at this OS nice level, so an interactive pass never waits behind one and the kernel
    # serves the interactive path first; false: one model thread, short bulk passes
    # (batch_bulk_max_tokens) while interactive rows come
    batch_bulk_lane: bool = True
    batch_bulk_nice: int = Field(default=10, ge=0, le=19)
    batch_min_fill: float = Field(
        default=0.7, ge=0, le=1,
        description="real/padded tokens a pass keeps (CPU: padding is compute)",
    )
    bulk_max_in_flight: int = Field(default=8, ge=1, description="bulk chunks running per worker")
    worker_heartbeat_s: float = Field(default=2.0, gt=0)
    # Celery task events (sent, received, started, succeeded): Flower's task list and task
    # runtimes need them; off, Flower still sees workers and queues (bench: CPU per task).
    task_events: bool = True
    # Redis broker: an unacked message comes back after this (a killed worker's chunks).
    broker_visibility_timeout_s: int = Field(default=3600, ge=1)
    # The sweeper (worker/sweeper.py; one worker per period, cluster-wide): chunks leased by a
    # worker whose heartbeat lapsed are re-sent at once; a sent chunk with no lease, no
    # results and no message in the broker (lost between pop and unacked, or in a Redis
    # restart) is re-sent once its job has not moved for lost_after_s. 0 turns it off.
    sweep_every_s: float = Field(default=2.0, ge=0)
    lost_after_s: float = Field(default=5.0, gt=0)
    stalled_after_s: float = Field(
        default=15.0, gt=0, description="a running job with no progress this long shows stalled"
    )
    bulk_window_chunks: int = Field(
        default=16, ge=1,
        description="chunks of one bulk job queued at a time: jobs of many keys interleave",
    )
    bulk_window_per_key: int = Field(
        default=0, ge=0,
        description="bulk chunks and splits of one key sent and not yet stored, across all its "
        "jobs (0: bulk_window_chunks); its further bulk jobs wait parked, oldest first",
    )
    # One attempt's hold on a chunk. Its worker renews it every heartbeat while the attempt
    # runs, so it lapses this long after the attempt (or its worker) is gone.
    chunk_lease_s: float = Field(default=10.0, gt=0,
                                 description="> 2 heartbeats; renewed while the attempt runs")
    # TEST ONLY: a text containing this marker makes scoring raise (poison-input tests).
    test_poison_marker: str | None = None

    # Logs: one line per record; "json" for log shippers
    log_format: Literal["text", "json"] = "text"

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(default=2, ge=1)
    # gunicorn worker class (api/gunicorn_workers.py). gevent: a connection is a greenlet, so
    # a client sending its body slowly holds no thread; gthread: a request holds a thread.
    api_worker_class: Literal["gevent", "gthread"] = "gevent"
    api_worker_connections: int = Field(default=1000, ge=1,
                                        description="gevent: open connections per worker")
    api_threads: int = Field(default=8, ge=1, description="gthread: threads per worker")
    api_body_timeout_s: float = Field(
        default=30.0, gt=0, description="gevent: a body not in by then after its headers: 408"
    )
    # prometheus-client's own variable: set, request metrics of all gunicorn workers merge.
    metrics_multiproc_dir: Path | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # --- Access and limits (api/auth.py, api/limits.py) ---
    # Fail closed: with no key configured every protected endpoint answers 401 (scripts/run.sh
    # issues a dev key for `make run`). Keys: raw or "sha256:<hex>"; only hashes are kept.
    auth_required: bool = True
    api_keys_cache_s: float = Field(default=2.0, ge=0, description="key list re-read period "
                                    "(past vault_cache_s): the most a revoked key still works")
    rate_limit_per_s: float = Field(default=50.0, gt=0, description="requests per key per second")
    rate_limit_burst: int = Field(default=200, ge=1, description="token bucket size per key")
    max_queue_depth: int = Field(default=10_000, ge=1, description="queued tasks before 429")
    max_pending_rows_per_key: int = Field(
        default=2_000_000, ge=1, description="rows one key may have waiting before its 429"
    )
    # Shares of a full queue (api/limits.py): at max_queue_depth, a key holding at least
    # max(queue_share_floor, max_queue_depth / keys active lately) queued chunks/splits is
    # refused; the others are still admitted. A key is active queue_share_active_s after it
    # last submitted.
    queue_share_floor: int = Field(default=64, ge=1, description="queued tasks a key may hold")
    queue_share_active_s: float = Field(default=60.0, gt=0)
    max_interactive_rows_per_key: int = Field(
        default=8192, ge=1, description="rows of one key's small (interactive) jobs waiting")
    # A store job's rows, counted against max_pending_rows_per_key before its first split is
    # scored: input bytes (x the expansion for .gz, .bz2 and Parquet) / bytes per row; then
    # measured from its scored splits.
    store_est_bytes_per_row: int = Field(default=64, ge=1)
    store_est_expansion: float = Field(default=8.0, ge=1.0,
                                       description="compressed input: bytes out per byte in")
    # Operator-only /metrics: scraped with "Authorization: Bearer <metrics_token>" (API keys
    # are refused: the figures are cluster-wide). Unset: /metrics answers 403.
    metrics_token: SecretStr | None = None
    max_deadline_s: float = Field(default=7 * 24 * 3600, gt=0)
    client_api_key: SecretStr | None = Field(default=None, description="key the CLI/bench send")

    # Training
    data_path: Path = REPO_ROOT.parent / "shared" / "data" / "sms_spam_collection.tsv"
    # sha256 of texts kept for independent evaluation: never trained, validated or chosen on
    exclude_sha256_path: Path = REPO_ROOT.parent / "shared" / "data" / "exclude-sha256.txt"

    # --- Operations: Flower ---
    flower_host: str = "127.0.0.1"
    flower_port: int = 5555
    flower_basic_auth: SecretStr | None = Field(default=None, description="user:password")
    flower_public_url: str = Field(default="http://127.0.0.1:5555", description="linked from /")

    # --- HDFS / Vault --- (artifact store, model registry, secret source)
    hdfs_url: str | None = Field(default=None, description="WebHDFS URL; unset: local registry")
    hdfs_user: str = "spamq"
    hdfs_root: str = "/spamq"
    hdfs_timeout_s: float = Field(default=30.0, gt=0)
    artifact_dir: Path = REPO_ROOT / "weights" / "registry"
    model_name: str = "spamq-sms"
    model_alias: str = "production"
    model_cache_dir: Path = REPO_ROOT / "weights" / "cache"
    vault_addr: str | None = Field(default=None, description="unset: secrets from the environment")
    vault_token: SecretStr | None = None
    vault_role_id: str | None = None
    vault_secret_id: SecretStr | None = None
    vault_mount: str = "secret"
    vault_path_prefix: str = "spamq"
    vault_timeout_s: float = Field(default=5.0, gt=0)
    vault_cache_s: float = Field(default=60.0, ge=0, description="how long a read secret is reused")
    vault_start_attempts: int = Field(default=5, ge=1, description="secret reads tried at start")
    # Secrets read through the SecretSource (these env values are used only without Vault).
    api_keys: SecretStr | None = Field(default=None, description="comma-separated API keys")

    # --- Model source and hot swap (worker/model_source.py) ---
    model_source: Literal["dir", "registry"] = "dir"  # registry: model_name@model_alias
    model_poll_s: float = Field(default=5.0, ge=0, description="alias re-check period; 0: never")
    model_pull_attempts: int = Field(default=5, ge=1, description="registry tries at start")
    model_pull_backoff_s: float = Field(default=1.0, ge=0, description="first retry delay, doubled")

    # --- Prediction log (spamq/storage/prediction_log.py): partitioned JSONL in the store ---
    prediction_log: bool = False
    prediction_log_text: Literal["text", "sha256", "none"] = "sha256"
    prediction_log_max_rows: int = Field(default=10_000, ge=1)
    prediction_log_max_age_s: float = Field(default=60.0, gt=0)
    prediction_log_root: str = "predictions"

    # --- Shadow scoring (worker/shadow.py): a candidate scores a sample beside production ---
    # <shadow_root>/candidate=<version>/date=YYYY-MM-DD/hour=HH/worker=<name>/part-*.parquet
    shadow_root: str = "shadow"
    shadow_queue_rows: int = Field(
        default=20_000, ge=1, description="rows waiting for the candidate; beyond: dropped")
    shadow_max_rows: int = Field(default=10_000, ge=1, description="rows per shadow file")
    shadow_flush_s: float = Field(default=60.0, gt=0, description="oldest buffered row's age")

    # --- Store jobs (spamq/jobs/store_jobs.py): inputs and outputs in the artifact store ---
    # Each API key uses <store_tenant_root>/<key id>/ and any prefix granted to its key id
    # (JSON: {"<key id>": ["data/sms", ...]}), spamq/storage/tenancy.py.
    split_bytes: int = Field(default=64 * 1024 * 1024, ge=1,
                             description="bytes per split of an uncompressed text input")
    plan_footers_max_files: int = Field(
        default=32, ge=0,
        description="Parquet files whose footers the API reads (a split per row group); more: "
                    "a split per file, so a submission reads no footer")
    # A plan over the cap merges consecutive row groups (up to split_bytes), then grows the
    # split size until it fits. 10,000 splits keep a job's plan near 1 MB of Redis and its
    # writes to ten 1,000-record pipelines, while still giving hundreds of workers work.
    max_splits_per_job: int = Field(default=10_000, ge=1, description="splits per store job")
    max_input_files: int = Field(
        default=10_000, ge=1,
        description="files per store job (a split never spans files: at most the split cap)")
    plan_footers_max_bytes: int = Field(
        default=1 << 20, ge=0,
        description="Parquet footer bytes the API reads at submit; more: the job is planned "
                    "by the plan task on a worker")
    # A split's worker memory and retries (worker/split_tasks.py, spamq/storage/splits.py).
    split_batch_bytes: int = Field(
        default=4 * 1024 * 1024, ge=64 * 1024,
        description="bytes of values a split turns into Python objects (and scores) at a time")
    split_max_attempts: int = Field(
        default=3, ge=1, description="attempts at one split (its worker died) before the job fails")
    max_rejected_per_split: int = Field(
        default=100_000, ge=0, description="rejected rows of one split before the job fails")
    store_tenant_root: str = "tenants"
    store_grants: dict[str, list[str]] = Field(default_factory=dict)

    # --- Feedback (spamq/feedback/): "report spam"/"not spam" as Parquet in the store ---
    # <feedback_root>/tenant=<key id>/date=YYYY-MM-DD/part-*.parquet; keep it outside
    # store_tenant_root and every grant, so no store job can write there.
    feedback_root: str = "feedback"
    feedback_retention_days: int = Field(
        default=365, ge=1, description="date partitions older than this are deleted")
    feedback_max_items: int = Field(default=1000, ge=1, description="items per POST /v1/feedback")
    feedback_sweep_every_s: float = Field(
        default=3600.0, ge=0, description="retention sweep period (worker sweeper); 0: off")

    # --- Webhooks (issue 15, spamq/webhooks/): signed job events, retried from a Redis outbox ---
    webhook_allow_http: bool = Field(default=False, description="DEVELOPMENT ONLY: http:// URLs")
    webhook_allow_hosts: list[str] = Field(
        default_factory=list,
        description="host names exempt from the private/loopback address refusal (JSON list)")
    webhook_progress_interval_s: float = Field(default=30.0, gt=0,
                                               description="at most one job.progress per job per")
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="one delivery attempt")
    webhook_max_attempts: int = Field(default=12, ge=1, description="then the dead letters")
    webhook_backoff_base_s: float = Field(default=10.0, gt=0,
                                          description="full jitter: U(0, min(max, base*2^(n-1)))")
    webhook_backoff_max_s: float = Field(default=7200.0, gt=0)
    webhook_lease_s: float = Field(
        default=60.0, gt=0,
        description="a claimed event returns to others after this (> webhook_timeout_s)")
    webhook_poll_s: float = Field(default=1.0, gt=0, description="deliverer idle wait")
    webhook_concurrency: int = Field(default=8, ge=1, description="deliveries in flight")
    webhook_key_concurrency: int = Field(
        default=2, ge=1, description="deliveries in flight per API key (of webhook_concurrency): "
        "one key's slow receiver holds only this many")
    webhook_max_response_bytes: int = Field(default=64 * 1024, ge=0)
    webhook_attempts_kept: int = Field(default=100, ge=1, description="attempt records per job")
    webhook_dead_ttl_s: int = Field(default=7 * 24 * 3600, ge=60,
                                    description="dead-letter retention")
    webhook_secret_overlap_s: float = Field(
        default=24 * 3600, ge=0, description="after a rotation the old secret signs this long too")
    webhook_metrics_port: int | None = Field(default=None, description="deliverer's own /metrics")
    webhook_metrics_host: str = "127.0.0.1"
    # Secret read through the SecretSource (env value used only without Vault): JSON
    # {"<key id>": {"current": "whsec_...", "previous": ..., "previous_until": unix time}}
    webhook_secrets: SecretStr | None = None
    # --- end webhooks ---


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build ``Settings(...)`` directly instead)."""
    return Settings()
