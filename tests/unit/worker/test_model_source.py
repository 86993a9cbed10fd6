"""worker.model_source: bounded retries, refusals, and the watcher's swap (local registry)."""

from __future__ import annotations

import pytest

from spamq.models.registry import ModelRegistry
from spamq.settings import Settings
from spamq.storage.artifacts import ArtifactError, LocalArtifactStore
from worker.model_source import ModelSource, ModelSourceError, ModelWatcher, retrying


def test_retrying_backs_off_then_names_the_cause():
    calls, sleeps = [], []

    def down():
        calls.append(1)
        raise ArtifactError("HDFS unreachable")

    with pytest.raises(ModelSourceError, match="unreachable after 3 tries"):
        retrying(down, what="resolving x", attempts=3, backoff_s=0.5, sleep=sleeps.append)
    assert len(calls) == 3 and sleeps == [0.5, 1.0]


def test_unknown_alias_is_a_clear_error(tmp_path):
    s = Settings(artifact_dir=tmp_path / "reg", model_cache_dir=tmp_path / "cache")
    with pytest.raises(ModelSourceError, match="has no alias 'production'"):
        ModelSource(s, sleep=lambda _: None).resolve()


def test_watcher_swaps_when_the_alias_moves(tmp_path):
    from scripts.random_model import make_random_model

    v1 = make_random_model(tmp_path / "m1", seed=1)
    v2 = make_random_model(tmp_path / "m2", seed=2)
    registry = ModelRegistry(LocalArtifactStore(tmp_path / "reg"))
    registry.push(tmp_path / "m1", name="spamq-sms")
    registry.push(tmp_path / "m2", name="spamq-sms")
    registry.promote("spamq-sms", v1, alias="production")
    s = Settings(artifact_dir=tmp_path / "reg", model_cache_dir=tmp_path / "cache",
                 model_source="registry", device="cpu")

    class State:
        settings = s
        runner = None

        def swap_runner(self, runner):
            self.runner = runner

    from worker.model_source import load_from_registry

    state = State()
    state.runner = load_from_registry(s)
    assert state.runner.version == v1
    watcher = ModelWatcher(state)
    assert watcher.check_once() is False
    registry.promote("spamq-sms", v2, alias="production")
    assert watcher.check_once() is True and state.runner.version == v2 and watcher.swaps == 1


class _Registry:
    """A registry whose pull fails with ``error``; counts the pulls."""

    def __init__(self, error):
        self.error, self.pulls = error, 0

    def resolve(self, name, alias):
        return "v2"

    def pull(self, name, version, *, cache_dir):
        self.pulls += 1
        raise self.error


@pytest.mark.parametrize(("error", "refused"), [
    ("corrupt", True),   # ModelRefused: a version that fails its manifest check
    ("unknown", False),  # any other RegistryError: tried again next poll
])
def test_a_refused_version_is_told_by_its_class_and_not_pulled_again(tmp_path, error, refused):
    from spamq.models.registry import ModelRefused, RegistryError

    registry = _Registry(ModelRefused("refusing spamq-sms/v2: bad hash") if error == "corrupt"
                         else RegistryError("no version v2"))
    s = Settings(artifact_dir=tmp_path / "reg", model_cache_dir=tmp_path / "cache",
                 model_pull_attempts=1)
    source = ModelSource(s, registry=registry, sleep=lambda _: None)

    class State:
        settings = s
        runner = None

        def swap_runner(self, runner):
            self.runner = runner

    watcher = ModelWatcher(State(), source=source)
    with pytest.raises(ModelSourceError) as err:
        watcher.check_once()
    assert err.value.refused is refused
    if refused:
        assert watcher.check_once() is False and registry.pulls == 1
    else:
        with pytest.raises(ModelSourceError):
            watcher.check_once()
        assert registry.pulls == 2
