from pathlib import Path

import pytest

#: fixtures any test may ask for, each started only when asked: hdfs_url and openbao (one
#: per session), browser (headless Chromium, one per module)
pytest_plugins = ["tests.helpers.services", "tests.helpers.browser"]


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Each test reads the settings of its own environment: none inherits the cached
    ``get_settings()`` of a test that ran before it with other variables."""
    from spamq.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    """An untrained tiny classifier directory (fast; for shapes, batching, plumbing)."""
    from scripts.random_model import make_random_model

    out = tmp_path_factory.mktemp("random-model")
    make_random_model(out)
    return out
