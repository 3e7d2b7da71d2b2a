"""Activations by name: the layer and parameters each stands for in a link dictionary.

Plain data, without Keras, so that a model definition can write an activation into its
dictionary (``sub``, ``par``) and check a hyperparameter before TensorFlow loads; the blocks
in :mod:`visionfw.blocks` make their activation layers from the same table.
"""
import copy

# name -> (layer name in a dictionary, its parameters)
ACTIVATIONS = {
    # PyTorch's PReLU starts at 0.25, a better start than Keras' 0; one slope per channel
    "prelu": ("PReLU", {"shared_axes": (1, 2),
                        "alpha_initializer": {"class_name": "Constant",
                                              "config": {"value": 0.25}}}),
    "leakyrelu": ("LeakyReLU", {"negative_slope": 0.2}),   # SRGAN's discriminator, ESRGAN
    "relu": ("ReLU", {}),
    "gelu": ("Activation", {"activation": "gelu"}),
    "silu": ("Activation", {"activation": "silu"}),
}


def activation_names():
    return sorted(ACTIVATIONS)


def activation_link(name):
    """``(sub, par)`` of activation ``name``; ``par`` is a fresh copy. An unknown name is a
    ``ValueError`` whose message lists the valid ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(activation_names())}")
    sub, par = ACTIVATIONS[name]
    return sub, copy.deepcopy(par)
