"""Shared test settings: quiet TensorFlow, two CPU threads (one per worker under two pytest
workers), inference as one graph function, the shared data folder."""
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# the tests run tiny networks on many sizes, where XLA's compile per size would cost more than
# it saves; tests/test_inference_path.py runs the XLA path against this one
os.environ.setdefault("VISIONFW_INFERENCE", "graph")
ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from visionfw import runtime  # noqa: E402

# `make test` runs two pytest workers (pytest-xdist) on the two cores: one thread each then
runtime.configure_threads(1 if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 else 2)

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
