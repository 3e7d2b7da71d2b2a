"""The PCA a code-conditioned network was trained with, carried in its dictionary's ``meta``.

SFTMD and IKC's Predictor and Corrector work on kernel codes ``code = kernel.reshape(-1) @ P``
(IKC: the matrix fitted on mean-centred kernels, applied without the mean). The matrix a
network was trained with travels with it, as ``meta['pca'] = {'matrix': [[...]], 'order':
'C', 'mean': [...], 'centred': false}``, so that ``test.py`` encodes the true kernel -- turned
with the image for the self-ensemble -- exactly as training did, and every decoded code is a
kernel (:meth:`visionfw.degradation.KernelPCA.decode`). A record without ``mean`` (networks
saved before it was kept) decodes with the family mean of its kernel size.
"""
import numpy as np

from visionfw.errors import VisionfwError


class CodeError(VisionfwError, ValueError):
    """A code-conditioned network without its PCA, or a PCA that does not fit it."""


def default_pca(code_len=10, size=21):
    """IKC's recipe, fitted here: 30000 isotropic ``size x size`` Gaussians, sigma uniform in
    [0.2, 4.0], seed 0, applied without the mean (deterministic: the signs are fixed)."""
    from visionfw.degradation import fit_pca

    return fit_pca(n_components=code_len, size=size, keep_mean=False, seed=0)


def pca_from(source, code_len):
    """A :class:`~visionfw.degradation.KernelPCA` from a file, or the default one for ``''``;
    its length must be ``code_len``. The mean is dropped (codes are ``kernel @ P``)."""
    from visionfw.degradation import load_pca

    pca = default_pca(code_len) if not source else load_pca(source).without_mean()
    if pca.n_components != code_len:
        raise CodeError(f"the PCA {source or '(default)'} gives {pca.n_components}-long codes; "
                        f"the network takes {code_len} (set its code_len, or give a PCA of "
                        f"{code_len} components)")
    return pca


def pca_to_meta(pca):
    out = {"matrix": np.asarray(pca.matrix, np.float64).round(10).tolist(), "order": pca.order,
           "kernel_size": pca.kernel_size, "centred": bool(pca.centred)}
    if pca.mean is not None:
        out["mean"] = np.asarray(pca.mean, np.float64).round(12).tolist()
    return out


def pca_of(model_or_meta):
    """The PCA recorded in a network's ``meta['pca']``; a one-line error without one."""
    from visionfw.degradation.pca import KernelPCA

    meta = model_or_meta
    if not isinstance(meta, dict):
        from visionfw.graph.builder import model_spec

        meta = (model_spec(model_or_meta) or {}).get("dict", {}).get("meta", {})
    record = meta.get("pca")
    if not isinstance(record, dict) or "matrix" not in record:
        raise CodeError("this network takes a kernel code but carries no PCA in meta['pca']; "
                        "train it with train.py (its recipe records the PCA) or add one")
    mean = record.get("mean")
    return KernelPCA(np.asarray(record["matrix"], np.float64),
                     None if mean is None else np.asarray(mean, np.float64),
                     order=record.get("order", "C"), centred=bool(record.get("centred", False)))


def with_pca(d, pca):
    """A copy of dictionary ``d`` whose ``meta`` records ``pca``."""
    out = dict(d)
    out["meta"] = dict(d.get("meta") or {}, pca=pca_to_meta(pca))
    return out


def encode(pca, kernels, noise_sigma=None):
    """Codes ``(B, t)`` of kernels ``(B, k, k)``: a float32 tensor for tensors (in graphs), a
    float32 array for arrays. With ``noise_sigma`` (the 0-255 scale), its IKC form
    ``10 * sigma / 255`` is appended."""
    import tensorflow as tf

    as_numpy = isinstance(kernels, np.ndarray)
    shape = tuple(kernels.shape)
    if shape[-1] != pca.kernel_size:
        raise CodeError(f"the PCA codes {pca.kernel_size}x{pca.kernel_size} kernels, the "
                        f"degradation makes {shape[-1]}x{shape[-2]}")
    code = pca.encode(tf.convert_to_tensor(kernels, tf.float32))
    if noise_sigma is not None:
        sigma = tf.reshape(tf.cast(noise_sigma, tf.float32), (-1, 1)) * (10.0 / 255.0)
        code = tf.concat([code, sigma], axis=-1)
    return code.numpy() if as_numpy else code


def bridge(source, target, tolerance=1e-6):
    """The ``(t_s, t_t)`` matrix that re-expresses codes of PCA ``source`` in PCA ``target``
    (``code_t = code_s @ M``, through kernel space: ``M = P_s^T P_t``), or ``None`` when the
    two are the same basis. Networks trained with different PCAs of the same kernels -- the
    published IKC Corrector and an SFTMD trained here, whose PCAs differ in column signs --
    can then share a loop."""
    if source.kernel_size != target.kernel_size or source.order != target.order:
        raise CodeError(f"the PCAs code different kernels ({source.kernel_size}x"
                        f"{source.kernel_size} {source.order} and {target.kernel_size}x"
                        f"{target.kernel_size} {target.order}); one loop cannot share them")
    if source.same_codes(target, tolerance):
        return None
    if source.centred or target.centred:
        raise CodeError("codes taken of kernels minus a mean cannot be bridged by a matrix; "
                        "use PCAs that code kernels IKC's way (kernel @ P)")
    return source.matrix.T @ target.matrix
