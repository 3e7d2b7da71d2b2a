"""Reading weights written by other frameworks."""
from visionfw.io.torch_state import (
    PickledObject,
    TorchReadError,
    read_torch_object,
    read_torch_state,
)

__all__ = ["PickledObject", "TorchReadError", "read_torch_object", "read_torch_state"]
