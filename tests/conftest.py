from pathlib import Path

import pytest

#: hdfs_url and openbao: session fixtures any test may ask for (each starts only when asked)
pytest_plugins = ["tests.helpers.services"]


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    """An untrained tiny classifier directory (fast; for shapes, batching, plumbing)."""
    from scripts.random_model import make_random_model

    out = tmp_path_factory.mktemp("random-model")
    make_random_model(out)
    return out
