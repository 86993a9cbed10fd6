"""``spamq train`` around the pipeline: data from ``hdfs://`` paths, and ``--publish``.

Kept out of spamq/training so the pipeline stays about training; spamq.training calls
:func:`add_io_arguments`, :func:`stage_data` and :func:`publish_from_args`.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from spamq.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def data_ref(value: str) -> str | Path:
    """``--data`` type: an ``hdfs://[host]/abs/path`` string, or a local Path."""
    return value if value.startswith("hdfs://") else Path(value)


def add_io_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--publish", action="store_true",
                        help="push the written model to the registry (HDFS or artifact_dir)")
    parser.add_argument("--alias", default=None,
                        help="with --publish: also point this alias at the new version")


def stage_data(data: str | Path | None, *, settings: Settings | None = None) -> Path | None:
    """A local path for ``data``: an ``hdfs://`` file is read through WebHDFS into a temp file.

    The host in the URI is not used: HDFS is reached at ``settings.hdfs_url`` (WebHDFS).
    """
    if not isinstance(data, str):
        return data
    from spamq.storage.artifacts import HdfsArtifactStore

    s = settings or get_settings()
    if not s.hdfs_url:
        raise SystemExit(f"--data {data}: set SPAMQ_HDFS_URL (WebHDFS) to read hdfs:// paths")
    path = PurePosixPath(urlparse(data).path)
    store = HdfsArtifactStore(s.hdfs_url, user=s.hdfs_user, root=str(path.parent),
                              timeout_s=s.hdfs_timeout_s)
    tmp = Path(tempfile.mkdtemp(prefix="spamq-data-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    local = tmp / path.name
    store.download_file(path.name, local)
    logger.info("training data %s read from %s (%d bytes)", data, store.describe(),
                local.stat().st_size)
    return local


def publish(out_dir: Path, *, alias: str | None, settings: Settings | None = None) -> str:
    """Push a written model directory; promote ``alias`` to it when given. Returns the version."""
    from spamq.models.registry import ModelRegistry

    s = settings or get_settings()
    registry = ModelRegistry.from_settings(s)
    version = registry.push(Path(out_dir), name=s.model_name)
    if alias:
        registry.promote(s.model_name, version, alias=alias)
    return version


def prepare_args(args: argparse.Namespace) -> None:
    """Before training: check the flags, stage ``hdfs://`` data locally."""
    if getattr(args, "alias", None) and not getattr(args, "publish", False):
        raise SystemExit("--alias needs --publish")
    args.data = stage_data(args.data)


def publish_from_args(args: argparse.Namespace, metrics: dict) -> None:
    if getattr(args, "publish", False):
        version = publish(Path(metrics["out_dir"]), alias=args.alias)
        s = get_settings()
        where = s.hdfs_url or s.artifact_dir
        print(f"published {s.model_name}/{version} to {where}"
              + (f" as {args.alias}" if args.alias else ""))
