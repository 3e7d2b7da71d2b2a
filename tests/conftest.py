"""Shared test settings: quiet TensorFlow, two CPU threads, the shared data folder."""
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from visionfw import runtime  # noqa: E402

runtime.configure_threads(2)

import pytest  # noqa: E402

SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
WEIGHTS = SHARED / "weights"


@pytest.fixture
def shared_data():
    """The shared data folder; tests that need it skip when it is absent."""
    if not DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return DATA


@pytest.fixture
def shared_weights():
    if not WEIGHTS.is_dir():
        pytest.skip("../shared/weights is not present")
    return WEIGHTS
