from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    """An untrained tiny classifier directory (fast; for shapes, batching, plumbing)."""
    from tests.models import make_random_model

    out = tmp_path_factory.mktemp("random-model")
    make_random_model(out)
    return out
