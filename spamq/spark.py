"""Score a Spark DataFrame with a registry model version (``pip install -e ".[spark]"``).

:func:`score_dataframe` runs the worker's runner (worker/model_source.py ``build_runner``:
the same tokenisation, max length, precision, temperature and threshold) inside the
executors with ``mapInPandas``, and returns the columns of a store job's part without its
``file``/``ref``: the id column, the kept columns, ``label``, ``spam_probability``,
``truncated``, ``model_version``. Texts a store job rejects (missing, not a string, blank,
too long, NUL, not Unicode: spamq.storage.rows.text_problem) are dropped, or kept with
``rejected=True`` as rows whose result columns are null and whose ``reason`` says why.

The model is resolved once, on the driver (``NAME@VERSION``, ``NAME@ALIAS``, a bare
version or alias of ``settings.model_name``, or a local model directory), so every
executor scores with the same version. Each executor Python process pulls it from the
registry (verified against its manifest; a corrupt version is refused, never loaded), loads
and warms it once, and keeps it in a module-level cache keyed by version for all the
batches and tasks it runs afterwards (Spark reuses its Python workers).

``spamq spark-score IN --output OUT`` (:func:`add_spark_parser`) is the same for
``spark-submit``: it reads CSV/TSV/JSONL/Parquet as a store job does and writes Parquet or
JSONL, with the rejected rows under ``OUT/_rejected``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spamq.models.manifest import MANIFEST, verify_model_dir
from spamq.settings import Settings, get_settings
from spamq.storage.rows import text_problem

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from worker.runner import BatchClassifier

logger = logging.getLogger(__name__)

RESULT_FIELDS = ("label", "spam_probability", "truncated", "model_version")
REASON = "reason"
REJECTED_DIR = "_rejected"  # as a store job's output

_RUNNERS: dict[tuple[str, str], BatchClassifier] = {}  # per executor process, by version
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelRef:
    """A model version as the driver resolved it: a registry ``name``/``version``, or a
    local directory (``path``) holding ``version``."""

    name: str
    version: str
    path: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.path or self.name, self.version)


def resolve_model(model: str, settings: Settings) -> ModelRef:
    """``model`` as one version: a local model directory (verified), or a registry
    ``NAME@REF`` / ``NAME/REF`` / ``REF`` (of ``settings.model_name``) whose alias, if it is
    one, is resolved now, so that every executor loads the same version."""
    from spamq.models.registry import ModelRegistry

    local = Path(model)
    if (local / MANIFEST).is_file():
        return ModelRef(name=local.name, version=verify_model_dir(local), path=str(local))
    for sep in ("@", "/"):
        name, found, ref = model.partition(sep)
        if found:
            break
    else:
        name, ref = settings.model_name, model
    version = ModelRegistry.from_settings(settings).resolve_ref(name, ref)
    return ModelRef(name=name, version=version)


def executor_runner(ref: ModelRef, settings: Settings) -> BatchClassifier:
    """The runner of ``ref`` in this Python process: pulled (verified), loaded and warmed on
    the first call, the same object on every later one."""
    with _LOCK:
        runner = _RUNNERS.get(ref.key)
        if runner is not None:
            return runner
        from worker.model_source import ModelSource, ModelSourceError, build_runner

        if ref.path is not None:
            path = Path(ref.path)
        else:
            source = ModelSource(settings.model_copy(update={"model_name": ref.name}))
            path = source.pull(ref.version)
        runner = build_runner(settings, path)
        if runner.version != ref.version:
            raise ModelSourceError(f"{ref.name}: holds {runner.version}, expected {ref.version}")
        _RUNNERS[ref.key] = runner
        logger.info("spark executor pid %d loaded %s/%s", os.getpid(), ref.name, ref.version)
        return runner


def _torch_threads(settings: Settings) -> None:
    """One torch thread per task CPU (``spark.task.cpus``) unless ``torch_threads`` is set:
    the executor's task slots, not each task, own the cores."""
    import torch
    from pyspark import TaskContext

    ctx = TaskContext.get()
    want = settings.torch_threads or (ctx.cpus() if ctx is not None else 1)
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)


def score_batches(batches: Iterator[pd.DataFrame], *, ref: ModelRef, settings: Settings,
                  text_column: str, out_columns: Sequence[str], rejected: bool,
                  stats: Any = None) -> Iterator[pd.DataFrame]:
    """mapInPandas' function: each pandas batch scored by the process's runner."""
    import pandas as pd

    _torch_threads(settings)
    loaded = ref.key in _RUNNERS
    runner = executor_runner(ref, settings)
    if stats is not None and not loaded:
        stats.add((1, 0, 0))
    kept = [c for c in out_columns if c not in (*RESULT_FIELDS, REASON)]
    for batch in batches:
        texts = batch[text_column].tolist()
        problems = [text_problem(t, max_chars=settings.max_chars_per_text) for t in texts]
        good = [p is None for p in problems]
        scored = runner.predict([t for t, ok in zip(texts, good, strict=True) if ok])
        if stats is not None:
            stats.add((0, 1, len(scored)))
        out = batch.loc[good, kept].reset_index(drop=True) if kept else pd.DataFrame(
            index=range(len(scored)))
        out["label"] = pd.Series([p.label for p in scored], dtype=object)
        out["spam_probability"] = pd.Series([p.spam_probability for p in scored],
                                            dtype="float64")
        out["truncated"] = pd.Series([p.truncated for p in scored], dtype=bool)
        out["model_version"] = pd.Series([p.model_version for p in scored], dtype=object)
        if rejected:
            out[REASON] = pd.Series([None] * len(scored), dtype=object)
            bad = [not ok for ok in good]
            if any(bad):
                rej = batch.loc[bad, kept].reset_index(drop=True)
                for c in RESULT_FIELDS:
                    rej[c] = None
                rej[REASON] = [p for p in problems if p is not None]
                out = pd.concat([out, rej], ignore_index=True)
        for c in kept:  # pandas 3's Arrow-backed strings: Spark's Arrow writer wants arrays
            if isinstance(out[c].dtype, pd.StringDtype):
                out[c] = out[c].astype(object)
        yield out[list(out_columns)]


def score_dataframe(df: DataFrame, *, model: str, text_column: str,
                    id_column: str | None = None, keep_columns: Sequence[str] = (),
                    settings: Settings | None = None, rejected: bool = False,
                    stats: Any = None) -> DataFrame:
    """``df`` scored: ``[id_column, *keep_columns, label, spam_probability, truncated,
    model_version]`` per scorable row (with ``rejected``: every row, plus ``reason``).

    ``model``: a registry ``NAME@VERSION`` (or alias, resolved here), a bare version or
    alias of ``settings.model_name``, or a local model directory every executor can read.
    ``stats``: an optional Spark accumulator of ``(model loads, batches, rows scored)``
    (:func:`stats_accumulator`)."""
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        StringType,
        StructField,
        StructType,
    )

    settings = settings or get_settings()
    fields = {f.name: f for f in df.schema.fields}
    extra = list(dict.fromkeys([*([id_column] if id_column else []), *keep_columns]))
    for name in (text_column, *extra):
        if name not in fields:
            raise ValueError(f"no column {name!r} in the DataFrame ({len(fields)} columns)")
    if not isinstance(fields[text_column].dataType, StringType):
        raise ValueError(f"column {text_column!r} is {fields[text_column].dataType.simpleString()}"
                         ", not a string")
    clash = set(extra) & {*RESULT_FIELDS, REASON}
    if clash:
        raise ValueError(f"kept column(s) {sorted(clash)} clash with the result columns")
    ref = resolve_model(model, settings)
    schema = StructType([
        *(StructField(c, fields[c].dataType, True) for c in extra),
        StructField("label", StringType(), True),
        StructField("spam_probability", DoubleType(), True),
        StructField("truncated", BooleanType(), True),
        StructField("model_version", StringType(), True),
        *([StructField(REASON, StringType(), True)] if rejected else []),
    ])
    out_columns = schema.fieldNames()
    source = df.select(*dict.fromkeys([*extra, text_column]))

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return score_batches(batches, ref=ref, settings=settings, text_column=text_column,
                             out_columns=out_columns, rejected=rejected, stats=stats)

    return source.mapInPandas(run, schema)


def stats_accumulator(spark: SparkSession) -> Any:
    """A Spark accumulator of ``(model loads, batches, rows scored)`` for score_dataframe."""
    from pyspark.accumulators import AccumulatorParam

    class _Triple(AccumulatorParam):
        def zero(self, value: tuple[int, int, int]) -> tuple[int, int, int]:
            return (0, 0, 0)

        def addInPlace(self, a: tuple[int, int, int],  # noqa: N802 - pyspark's name
                       b: tuple[int, int, int]) -> tuple[int, int, int]:
            return (a[0] + b[0], a[1] + b[1], a[2] + b[2])

    return spark.sparkContext.accumulator((0, 0, 0), _Triple())


# ------------------------------------------------------------------------------ the command

def input_format(path: str, fmt: str | None) -> str:
    """The reader for ``path``: ``fmt``, else the store job's extension rules."""
    from spamq.storage.splits import file_format

    if fmt:
        return fmt
    found = file_format(path.rstrip("/").rsplit("/", 1)[-1].replace("*", ""))
    if found is None:
        raise ValueError("cannot tell the input's format from its name: give --format "
                         "csv, tsv, jsonl or parquet")
    return found[0]


def read_input(spark: SparkSession, path: str, fmt: str) -> DataFrame:
    """CSV/TSV as a store job reads them: a header row, every field a string, RFC 4180
    quoting (doubled quotes, quoted newlines); JSONL one object a line; Parquet as typed."""
    if fmt in ("csv", "tsv"):
        return (spark.read.option("header", True).option("sep", "\t" if fmt == "tsv" else ",")
                .option("quote", '"').option("escape", '"').option("multiLine", True)
                .option("mode", "PERMISSIVE").csv(path))
    if fmt == "jsonl":
        return spark.read.json(path)
    if fmt == "parquet":
        return spark.read.parquet(path)
    raise ValueError(f"unknown input format {fmt!r}: csv, tsv, jsonl or parquet")


def write_output(df: DataFrame, path: str, fmt: str, *, mode: str = "errorifexists") -> None:
    writer = df.write.mode(mode)
    if fmt == "parquet":
        writer.parquet(path)
    else:
        writer.json(path)


def spark_session(app: str, master: str | None) -> SparkSession:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app)
    if master:
        builder = builder.master(master)
    session = builder.getOrCreate()
    sc = session.sparkContext
    if (sc.master or "").startswith("local") and not sc.getConf().get("spark.pyspark.python"):
        # local mode: the executors are this interpreter's children (its venv, its torch),
        # not whatever "python3" is on the PATH
        sc.pythonExec = sys.executable
    return session


def _spark_score(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F  # noqa: N812

    settings = get_settings()
    spark = spark_session("spamq-spark-score", args.master)
    try:
        df = read_input(spark, args.input, input_format(args.input, args.format))
        stats = stats_accumulator(spark)
        scored = score_dataframe(
            df.repartition(args.partitions) if args.partitions else df,
            model=args.model or f"{settings.model_name}@{settings.model_alias}",
            text_column=args.column, id_column=args.id_column,
            keep_columns=args.keep or (), settings=settings, rejected=True, stats=stats,
        ).persist()
        good = scored.filter(F.col(REASON).isNull()).drop(REASON)
        bad = scored.filter(F.col(REASON).isNotNull()).drop(*RESULT_FIELDS)
        write_output(good, args.output, args.output_format)
        rejected = bad.count()
        if rejected:
            write_output(bad, f"{args.output.rstrip('/')}/{REJECTED_DIR}", "jsonl")
        loads, batches, rows = stats.value
        print(f"{rows} rows scored, {rejected} rejected -> {args.output} "
              f"({batches} batches, model loaded {loads} time(s))")
        scored.unpersist()
    except ValueError as exc:
        print(f"spamq spark-score: {exc}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    return 0


def add_spark_parser(sub: Any) -> None:
    p = sub.add_parser("spark-score", help="score a file or directory with Spark "
                       "(spark-submit spamq/cli/main.py spark-score IN --output OUT)")
    p.add_argument("input", help="what Spark reads: hdfs://..., webhdfs://..., a local path "
                   "or a glob")
    p.add_argument("--output", required=True, help="a new directory (hdfs://... or local)")
    p.add_argument("--column", default="text", help="the column holding the text")
    p.add_argument("--id-column", help="a column copied into every result row")
    p.add_argument("--keep", action="append", help="another column to copy (repeatable)")
    p.add_argument("--model", help="NAME@VERSION or NAME@ALIAS in the registry, or a model "
                   "directory (default: SPAMQ_MODEL_NAME@SPAMQ_MODEL_ALIAS)")
    p.add_argument("--format", choices=("csv", "tsv", "jsonl", "parquet"),
                   help="the input's format (default: from its extension)")
    p.add_argument("--output-format", choices=("parquet", "jsonl"), default="parquet")
    p.add_argument("--partitions", type=int, default=0,
                   help="repartition the input into N partitions first (default: as read)")
    p.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    p.set_defaults(func=_spark_score)
