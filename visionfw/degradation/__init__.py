"""Degradations for super-resolution: blur kernels, degradation ops, specs, PCA codes, protocols.

The low-resolution image is made from the high-resolution one by a chain of ops written as a
short spec string, e.g. ``"gaussian(sigma=2.0)+bicubic+noise(15)"``::

    from visionfw.degradation import parse_degradation, get_protocol
    deg = parse_degradation("gaussian(sigma1=0.2~4,sigma2=0.2~4,theta=0~3.1416)+bicubic")
    lr = deg(hr, 4, seed=7)          # float32 [0, 1], (H, W, C) or (N, H, W, C)
    kernel = deg.kernel              # the kernel that call used, the label of blind models
    for name, deg in get_protocol("gaussian8", 4):
        ...

Submodules: :mod:`.kernels` (Gaussian, motion and stored kernels, NumPy and TensorFlow),
:mod:`.ops` (blur, down-sampling, noise, JPEG as TensorFlow ops), :mod:`.spec` (the spec
parser and :class:`Degradation`), :mod:`.pca` (SFTMD/IKC kernel codes), :mod:`.protocols`
(the blind test settings), :mod:`.metrics` (kernel PSNR and kernel pictures). Conventions are
written down in ``docs/degradations.md``.

Only NumPy is imported with the package; TensorFlow loads with the first op that needs it.
"""

try:
    from visionfw.errors import VisionfwError as _Base
except ImportError:  # the errors module is optional for this package
    _Base = Exception


class DegradationError(ValueError, _Base):
    """A bad degradation spec, op argument, kernel or protocol; the message is one line."""


# public name -> submodule that defines it
from visionfw._lazy import lazy_exports  # noqa: E402

_API = {
    # kernels
    "gaussian_kernel": "kernels",
    "sample_gaussian_params": "kernels",
    "random_gaussian_kernel": "kernels",
    "gaussian_kernels_tf": "kernels",
    "random_gaussian_kernels_tf": "kernels",
    "motion_kernel": "kernels",
    "load_kernels": "kernels",
    "load_kernel": "kernels",
    "usrnet_kernels": "kernels",
    "kernel_origin": "kernels",
    "centre_of_mass": "kernels",
    # ops
    "blur": "ops",
    "downsample_bicubic": "ops",
    "downsample_direct": "ops",
    "add_gaussian_noise": "ops",
    "jpeg_compress": "ops",
    "quantize": "ops",
    "to_uint8": "ops",
    # specs
    "parse_degradation": "spec",
    "Degradation": "spec",
    "op_names": "spec",
    "register_op": "spec",
    "describe_ops": "spec",
    # PCA
    "KernelPCA": "pca",
    "fit_pca": "pca",
    "load_pca": "pca",
    "code_to_map": "pca",
    # protocols
    "get_protocol": "protocols",
    "protocol_names": "protocols",
    "hr_multiple": "protocols",
    "export_protocol": "protocols",
    # kernel metrics
    "kernel_psnr": "metrics",
    "kernel_mse": "metrics",
    "kernel_picture": "metrics",
    "kernel_grid": "metrics",
    "fit_isotropic_sigma": "metrics",
    "kernel_shape": "metrics",
    "orientation_summary": "metrics",
}

__all__ = sorted(["DegradationError", *_API])


__getattr__, __dir__ = lazy_exports(__name__, _API)
