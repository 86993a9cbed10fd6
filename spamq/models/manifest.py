"""The model directory's manifest: sha256 of every file, provenance, and the version id.

The version id of a model is the first 16 hex digits of the sha256 of its canonical
manifest, so any change to any file, or to how it was made, is a new version.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from spamq.errors import SpamqError

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


class ManifestError(SpamqError, RuntimeError):
    """A model directory is incomplete or does not match its manifest."""

    public_message = "a model directory does not match its manifest (see the log)"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in ("torch", "transformers", "tokenizers", "safetensors"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def build_manifest(model_dir: Path, **provenance: Any) -> dict[str, Any]:
    """Hash every file in ``model_dir`` (except the manifest) and attach ``provenance``."""
    files = {
        p.relative_to(model_dir).as_posix(): sha256_file(p)
        for p in sorted(model_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    return {"files": files, "versions": _package_versions(), **provenance}


def version_of(manifest: dict[str, Any]) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def write_manifest(model_dir: Path, **provenance: Any) -> str:
    """Write ``manifest.json`` into ``model_dir``; return the model's version id."""
    manifest = build_manifest(model_dir, **provenance)
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return version_of(manifest)


def read_manifest(model_dir: Path) -> dict[str, Any]:
    path = model_dir / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: no manifest; not a spamq model directory") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: manifest is not valid JSON ({exc})") from exc


def verify_model_dir(model_dir: Path) -> str:
    """Check every file against the manifest; return the version id or raise ManifestError."""
    manifest = read_manifest(model_dir)
    for name, expected in manifest["files"].items():
        path = model_dir / name
        if not path.is_file():
            raise ManifestError(f"{model_dir}: {name} is listed in the manifest but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ManifestError(
                f"{model_dir}: {name} sha256 {actual[:12]} does not match manifest {expected[:12]}"
            )
    return version_of(manifest)
