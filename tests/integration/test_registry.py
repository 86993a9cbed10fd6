"""ModelRegistry against a real HDFS (and the local store): push, list, promote, pull, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spamq.models.manifest import ManifestError, verify_model_dir, write_manifest
from spamq.models.registry import ModelRegistry, RegistryError
from spamq.storage.artifacts import ArtifactStore

pytestmark = pytest.mark.integration

NAME = "spamq-sms"


@pytest.fixture
def registry(store: ArtifactStore) -> ModelRegistry:
    return ModelRegistry(store)


def fake_model(base: Path, seed: str = "a") -> tuple[Path, str]:
    """A small model directory with a manifest; returns (dir, version)."""
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps({"seed": seed, "dim": 8}))
    (base / "model.safetensors").write_bytes(os.urandom(200_000))
    (base / "tokenizer").mkdir()
    (base / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nfree\nprize\n")
    return base, write_manifest(base, source="test", seed=seed)


def cache_entries(cache: Path) -> list[str]:
    d = cache / NAME
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_push_list_promote_resolve_pull(registry: ModelRegistry, tmp_path: Path) -> None:
    model, version = fake_model(tmp_path / "m1")
    assert registry.list(NAME) == []

    assert registry.push(model, name=NAME) == version
    assert registry.list(NAME) == [version]
    remote = registry.store.files(f"models/{NAME}/{version}")
    assert set(remote) == {
        "config.json",
        "model.safetensors",
        "tokenizer/vocab.txt",
        "manifest.json",
    }
    assert remote["model.safetensors"] == 200_000

    # Pushing the same version again is a no-op.
    assert registry.push(model, name=NAME, verify_hashes=True) == version
    assert registry.list(NAME) == [version]

    registry.promote(NAME, version, alias="production")
    assert registry.resolve(NAME, "production") == version
    assert registry.aliases(NAME) == {"production": version}
    assert registry.list(NAME) == [version]  # aliases/ is not a version

    cache = tmp_path / "cache"
    path = registry.pull(NAME, "production", cache_dir=cache)
    assert path == cache / NAME / version
    assert verify_model_dir(path) == version
    for rel in ("config.json", "model.safetensors", "tokenizer/vocab.txt"):
        assert (path / rel).read_bytes() == (model / rel).read_bytes()
    assert cache_entries(cache) == [version]
    # By version id: the cached copy is verified and reused.
    assert registry.pull(NAME, version, cache_dir=cache) == path

    # A second version and moving the alias.
    model2, version2 = fake_model(tmp_path / "m2", seed="b")
    assert registry.push(model2, name=NAME) == version2
    assert sorted(registry.list(NAME)) == sorted([version, version2])
    registry.promote(NAME, version2, alias="production")
    assert registry.resolve(NAME, "production") == version2
    assert registry.pull(NAME, "production", cache_dir=cache) == cache / NAME / version2


def test_unknown_version_alias_and_bad_names(registry: ModelRegistry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="push it first"):
        registry.promote(NAME, "0123456789abcdef", alias="production")
    with pytest.raises(RegistryError, match="no alias 'staging'"):
        registry.resolve(NAME, "staging")
    with pytest.raises(RegistryError, match="no alias 'staging'"):
        registry.pull(NAME, "staging", cache_dir=tmp_path / "cache")
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.list("../etc")
    with pytest.raises(RegistryError, match="invalid version"):
        registry.pull(NAME, "_tmp-abc", cache_dir=tmp_path / "cache")


def test_corrupt_remote_file_is_refused_and_not_cached(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    model, version = fake_model(tmp_path / "m")
    registry.push(model, name=NAME)
    registry.store.write_bytes(
        f"models/{NAME}/{version}/model.safetensors", b"tampered", overwrite=True
    )
    cache = tmp_path / "cache"
    with pytest.raises(RegistryError, match="model.safetensors") as info:
        registry.pull(NAME, version, cache_dir=cache)
    assert isinstance(info.value.__cause__, ManifestError)
    assert cache_entries(cache) == []

    # A file missing remotely (a partial copy) is refused the same way.
    model_b, version_b = fake_model(tmp_path / "mb", seed="b")
    registry.push(model_b, name=NAME)
    registry.store.delete(f"models/{NAME}/{version_b}/tokenizer/vocab.txt")
    with pytest.raises(
        RegistryError, match=r"tokenizer/vocab.txt is listed in the manifest but missing"
    ):
        registry.pull(NAME, version_b, cache_dir=cache)
    assert cache_entries(cache) == []


def test_version_directory_with_someone_elses_manifest_is_refused(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    model, version = fake_model(tmp_path / "m")
    registry.push(model, name=NAME)
    registry.store.rename(f"models/{NAME}/{version}", f"models/{NAME}/0000000000000000")
    with pytest.raises(RegistryError, match=f"its manifest is version {version}"):
        registry.pull(NAME, "0000000000000000", cache_dir=tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == []


def test_damaged_cache_entry_is_downloaded_again(registry: ModelRegistry, tmp_path: Path) -> None:
    model, version = fake_model(tmp_path / "m")
    registry.push(model, name=NAME)
    path = registry.pull(NAME, version, cache_dir=tmp_path / "cache")
    (path / "config.json").write_text("{}")
    assert registry.pull(NAME, version, cache_dir=tmp_path / "cache") == path
    assert verify_model_dir(path) == version


def test_push_refuses_a_directory_that_does_not_match_its_manifest(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    model, _ = fake_model(tmp_path / "m")
    (model / "config.json").write_text("changed after the manifest")
    with pytest.raises(ManifestError, match="config.json"):
        registry.push(model, name=NAME)
    assert registry.store.list(f"models/{NAME}") == []


def test_push_never_exposes_a_partial_version(
    registry: ModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = registry.store
    model, version = fake_model(tmp_path / "m")
    dest = f"models/{NAME}/{version}"

    # The version appears only through the final rename, complete.
    seen = []
    real_rename = store.rename

    def spy_rename(src: str, dst: str, *, overwrite: bool = False) -> None:
        seen.append((dst, store.exists(dst), sorted(store.files(src)), registry.list(NAME)))
        real_rename(src, dst, overwrite=overwrite)

    monkeypatch.setattr(store, "rename", spy_rename)
    # Fail half-way through an upload: nothing may be listed or left behind.
    real_upload = store.upload_file
    calls = {"n": 0}

    def flaky_upload(local: Path, path: str, *, overwrite: bool = False) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("connection reset (simulated)")
        real_upload(local, path, overwrite=overwrite)

    monkeypatch.setattr(store, "upload_file", flaky_upload)
    with pytest.raises(OSError, match="simulated"):
        registry.push(model, name=NAME)
    assert not store.exists(dest)
    assert registry.list(NAME) == []
    assert store.list(f"models/{NAME}") == []  # the temporary upload was removed
    assert seen == []

    monkeypatch.setattr(store, "upload_file", real_upload)
    assert registry.push(model, name=NAME) == version
    assert seen == [
        (
            dest,
            False,
            ["config.json", "manifest.json", "model.safetensors", "tokenizer/vocab.txt"],
            [],
        )
    ]
    assert registry.list(NAME) == [version]
