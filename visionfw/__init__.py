"""visionfw: super-resolution networks declared as link dictionaries, built as Keras models.

The heavy parts (TensorFlow, Keras) load on first use, so ``import visionfw`` stays cheap and a
submodule such as ``visionfw.metrics`` can be used on its own.
"""

from visionfw import runtime as _runtime
from visionfw._lazy import lazy_exports

_runtime.install_quiet_import()      # TensorFlow's start-up lines are not the user's concern

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "LinkError": "visionfw.errors",
    "VisionfwError": "visionfw.errors",
    "build": "visionfw.graph.builder",
    "validate": "visionfw.graph.validate",
    "layer_table": "visionfw.graph.printer",
    "print_layer_table": "visionfw.graph.printer",
    "register_layer": "visionfw.graph.registry",
    "register_block": "visionfw.graph.registry",
    "register_model": "visionfw.models",
    "register_recipe": "visionfw.recipes.base",
    "register_method": "visionfw.methods.base",
    "model_dict": "visionfw.models",
    "model_names": "visionfw.models",
    "model_hparams": "visionfw.models",
    "build_model": "visionfw.models",
    "save_model": "visionfw.checkpoint",
    "load_model": "visionfw.checkpoint",
    "read_spec": "visionfw.checkpoint",
    "dict_to_json": "visionfw.graph.schema",
    "dict_from_json": "visionfw.graph.schema",
    "save_dict": "visionfw.graph.schema",
    "load_dict": "visionfw.graph.schema",
    "imresize": "visionfw.resize",
}

__all__ = sorted(_API)


__getattr__, __dir__ = lazy_exports(__name__, _API)

from visionfw import plugins as _plugins  # noqa: E402

_plugins.install()
