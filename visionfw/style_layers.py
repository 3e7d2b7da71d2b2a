"""Layers of style-based generators and spectrally normalised discriminators (ReDegNet's
SynNet, DegNet and discriminator, ``model_defs/redeg.py``), usable by name in link
dictionaries.

:class:`ModulatedConv2D` is StyleGAN2's modulated convolution: a per-image style ``s`` (an
affine map of ``w``) scales the kernel's input channels, and demodulation rescales each output
channel to unit expected magnitude. It is computed as ``conv(x * s, k) * d`` -- the same sums
as a grouped convolution with one modulated kernel per image, without building those kernels.
:class:`BilinearUp2x` resizes x2 bilinearly; :class:`PixelNorm` normalises a vector to unit
root mean square; :class:`LearnedScale` multiplies by one learned scalar (a gate that starts
shut); :class:`SNConv2D` and :class:`SNDense` are ``Conv2D`` and ``Dense`` under
``keras.layers.SpectralNormalization``, spelled with plain arguments so a dictionary can name
them.
"""
import math

import keras
from keras import ops

from visionfw.graph.registry import register_layer


def _upsample2x(x):
    """Bilinear x2 with half-pixel centres (``align_corners`` false; the edge sample repeated):
    TensorFlow's ``resize``, which PyTorch's ``Upsample(scale_factor=2, mode='bilinear')``
    matches."""
    import tensorflow as tf

    shape = tf.shape(x)
    y = tf.image.resize(x, tf.stack([2 * shape[1], 2 * shape[2]]), method="bilinear")
    return tf.cast(y, x.dtype)


@register_layer
class ModulatedConv2D(keras.layers.Layer):
    """A convolution whose kernel is modulated by a style vector, one kernel per image.

    Called on ``[x, w]``: ``x`` is ``(B, H, W, Cin)`` and ``w`` is ``(B, D)``. The style is
    ``s = w A + b`` (``Cin`` values per image; ``b`` starts at ``style_bias``). The kernel
    ``k`` (stored with unit-variance entries and multiplied by ``1 / sqrt(Cin * size**2)`` at
    run time, as in StyleGAN2) becomes ``k'[., ., i, o] = s[i] k[., ., i, o]``; with
    ``demodulate`` each output channel is then divided by ``sqrt(sum over taps and i of k'**2
    + 1e-8)``. With ``upsample`` the input is first resized x2 bilinearly (half-pixel
    centres), then convolved. 'same' padding, stride 1. The output is ``(B, H, W, filters)``,
    ``(B, 2H, 2W, filters)`` with ``upsample``.

    Args:
        filters: output channels.
        kernel_size: the square kernel's side (odd).
        demodulate: normalise each output channel (False for an RGB head).
        upsample: resize the input x2 before the convolution.
        use_bias: add a bias (starting at zero) after the (de)modulation.
        style_bias: the starting value of the style's bias ``b``, or None for PyTorch's default
            of a linear layer's bias, uniform within ``1 / sqrt(D)`` (the official ReDegNet's).
        zero_start: start the kernel at zero (the layer's output starts as its bias), for a
            head whose output is added to something it should leave unchanged at first.
        epsilon: added under the demodulation's square root.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    num_inputs = 2

    def __init__(self, filters, kernel_size=3, demodulate=True, upsample=False, use_bias=False,
                 style_bias=1.0, epsilon=1e-8, zero_start=False, **kwargs):
        super().__init__(**kwargs)
        if int(filters) != filters or filters < 1:
            raise ValueError(f"filters must be a positive integer, got {filters!r}")
        if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.demodulate = bool(demodulate)
        self.upsample = bool(upsample)
        self.use_bias = bool(use_bias)
        self.style_bias = None if style_bias is None else float(style_bias)
        self.epsilon = float(epsilon)
        self.zero_start = bool(zero_start)

    def build(self, input_shapes):
        x_shape, w_shape = input_shapes
        cin, dim = x_shape[-1], w_shape[-1]
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, cin, self.filters),
                                      initializer="zeros" if self.zero_start else
                                      keras.initializers.RandomNormal(stddev=1.0))
        # PyTorch's default for a linear layer's matrix: uniform within 1 / sqrt(fan in)
        self.style_kernel = self.add_weight(
            name="style_kernel", shape=(dim, cin),
            initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"))
        self.style_bias_weight = self.add_weight(
            name="style_bias", shape=(cin,),
            initializer=(keras.initializers.Constant(self.style_bias)
                         if self.style_bias is not None else
                         keras.initializers.RandomUniform(-1 / math.sqrt(dim),
                                                          1 / math.sqrt(dim))))
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                     if self.use_bias else None)
        self.gain = 1.0 / math.sqrt(cin * k * k)

    def call(self, inputs):
        x, w = inputs
        style = ops.matmul(ops.cast(w, x.dtype), self.style_kernel) + self.style_bias_weight
        kernel = self.kernel * self.gain
        if self.upsample:
            x = _upsample2x(x)
        y = ops.conv(x * style[:, None, None, :], kernel, padding="same")
        if self.demodulate:
            # sum over taps and input channels of (s_i k_io)^2, in float32 under any policy
            energy = ops.sum(ops.square(ops.cast(kernel, "float32")), axis=(0, 1))
            power = ops.matmul(ops.square(ops.cast(style, "float32")), energy)
            y = y * ops.cast(ops.rsqrt(power + self.epsilon), y.dtype)[:, None, None, :]
        if self.bias is not None:
            y = y + self.bias
        return y

    def compute_output_shape(self, input_shapes):
        b, h, w, _ = input_shapes[0]
        if self.upsample:
            h, w = (None if h is None else 2 * h), (None if w is None else 2 * w)
        return (b, h, w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "demodulate": self.demodulate,
                "upsample": self.upsample, "use_bias": self.use_bias,
                "style_bias": self.style_bias, "epsilon": self.epsilon,
                "zero_start": self.zero_start}


@register_layer
class BilinearUp2x(keras.layers.Layer):
    """x2 bilinear up-sampling with half-pixel centres, the edge sample repeated (PyTorch's
    ``align_corners=False``), for inputs of any height and width (Keras' ``UpSampling2D``
    needs them known inside a compiled function).

    Args:
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def call(self, x):
        return _upsample2x(x)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, c)


@register_layer
class PixelNorm(keras.layers.Layer):
    """``x / sqrt(mean(x**2 over the last axis) + epsilon)``: each vector scaled to unit root
    mean square (the head of a StyleGAN mapping network).

    Args:
        epsilon: added under the square root.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        mean = ops.mean(ops.square(ops.cast(x, "float32")), axis=-1, keepdims=True)
        return x * ops.cast(ops.rsqrt(mean + self.epsilon), x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@register_layer
class LearnedScale(keras.layers.Layer):
    """Multiplies by one learned scalar, ``initial`` at the start (0: a path that contributes
    nothing until training opens it, as StyleGAN's noise inputs).

    Args:
        initial: the scalar's starting value.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, initial=0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial = float(initial)

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(),
                                     initializer=keras.initializers.Constant(self.initial))

    def call(self, x):
        return x * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}


class _Spectral(keras.layers.SpectralNormalization):
    """A spectrally normalised layer built from its own arguments (not from a layer object),
    so that its configuration is plain values."""

    def get_config(self):
        config = super().get_config()
        config.pop("layer", None)
        return {**config, **self._arguments()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # Keras' wrapper keeps the wrapped layer's kernel as one of its own variables too, so its
    # default saving writes every kernel twice (files 1.7 times their size). The wrapped layer
    # saves the kernel; the wrapper saves only its power-method vector.
    def save_own_variables(self, store):
        store["0"] = self.vector_u

    def load_own_variables(self, store):
        # files written before the change hold (kernel, vector_u): the kernel is the wrapped
        # layer's, loaded with it
        count = len(store)
        if count not in (1, 2):
            raise ValueError(f"{self.name}: {count} saved variables where 1 (the spectral "
                             "norm's vector) or 2 (with a copy of the kernel) are expected")
        self.vector_u.assign(store[str(count - 1)])


@register_layer
class SNConv2D(_Spectral):
    """``Conv2D`` with its kernel spectrally normalised (``keras.layers.SpectralNormalization``:
    in training, each call divides the kernel by its largest singular value, estimated with
    ``power_iterations`` steps of the power method; at inference the kernel is used as it is).

    Args:
        filters: output channels.
        kernel_size: the kernel's side.
        strides: the stride.
        padding: ``'same'`` or ``'valid'``.
        use_bias: add a bias.
        power_iterations: power-method steps per training call.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, filters, kernel_size=3, strides=1, padding="same", use_bias=True,
                 power_iterations=1, **kwargs):
        conv = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                                   use_bias=use_bias, dtype=kwargs.get("dtype"), name="conv")
        super().__init__(conv, power_iterations=power_iterations, **kwargs)
        self.filters = int(filters)
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.use_bias = bool(use_bias)

    def _arguments(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "use_bias": self.use_bias}


@register_layer
class SNDense(_Spectral):
    """``Dense`` with its kernel spectrally normalised (as :class:`SNConv2D`).

    Args:
        units: output units.
        use_bias: add a bias.
        power_iterations: power-method steps per training call.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, units, use_bias=True, power_iterations=1, **kwargs):
        dense = keras.layers.Dense(units, use_bias=use_bias, dtype=kwargs.get("dtype"),
                                   name="dense")
        super().__init__(dense, power_iterations=power_iterations, **kwargs)
        self.units = int(units)
        self.use_bias = bool(use_bias)

    def _arguments(self):
        return {"units": self.units, "use_bias": self.use_bias}
