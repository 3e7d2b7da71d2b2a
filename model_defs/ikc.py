"""IKC: Gu et al., "Blind Super-Resolution With Iterated Kernel Correction", CVPR 2019 -- the
kernel Predictor and Corrector (the SR network SFTMD is not defined here).

Both work on a blur kernel's PCA code: the 21x21 kernel flattened and projected on a
(441, code_len) matrix.
"""
from visionfw.errors import HyperparameterError
from visionfw.models import register_model

LRELU = {"negative_slope": 0.2}    # Keras' LeakyReLU layer defaults to 0.3


def conv_stack(start, strides, widths, name="convo"):
    """Links of 5x5 convolutions, each followed by LeakyReLU(0.2), from node ``start``.

    A stride-2 convolution pads 2 pixels on every side, as PyTorch's ``padding=2`` does (Keras
    'same' would pad (1, 2) on even sizes); the explicit padding is a ``pad`` link. Returns
    the families and the last node.
    """
    d = {name: [], f"{name}_par": [], "lrelu": [], "pad": []}
    node = start
    for i, (stride, width) in enumerate(zip(strides, widths)):
        conv = {"filters": width, "kernel_size": 5, "strides": stride,
                "padding": "same" if stride == 1 else "valid"}
        if stride != 1:
            d["pad"].append((node, f"p{i}"))
            node = f"p{i}"
        d[name].append((node, f"c{i}"))
        d[f"{name}_par"].append(conv)
        d["lrelu"].append((f"c{i}", f"a{i}"))
        node = f"a{i}"
    d.update({"lrelu_sub": "LeakyReLU", "lrelu_par": LRELU,
              "pad_sub": "ZeroPadding2D", "pad_par": {"padding": 2}})
    if not d["pad"]:
        del d["pad"], d["pad_sub"], d["pad_par"]
    return d, node


def _check(model, nf, code_len, channels):
    if nf < 1 or code_len < 1 or channels < 1:
        raise HyperparameterError(f"{model} needs nf, code_len, channels >= 1; got nf={nf}, "
                                  f"code_len={code_len}, channels={channels}")


@register_model("ikc-predictor", recipe="ikc-predictor")
def ikc_predictor(nf: int = 64, code_len: int = 10, channels: int = 3, scale: int = 4):
    """IKC's Predictor: the kernel code of an LR image.

    Six 5x5 convolutions (the fourth with stride 2), each followed by LeakyReLU(0.2) -- the
    last one too -- then global average pooling to a ``(B, code_len)`` code.

    Args:
        nf: filters of the hidden convolutions.
        code_len: length of the kernel code (the PCA dimension).
        channels: image channels (RGB in [0, 1] for the published weights).
        scale: the SR factor the Predictor was trained for (x4 for the published weights); the
            network does not depend on it.
    """
    _check("ikc-predictor", nf, code_len, channels)
    d, last = conv_stack("lr", [1, 1, 1, 2, 1, 1], [nf] * 5 + [code_len])
    return {
        "name": "IKCPredictor",
        "meta": {"scale": scale, "color": "rgb", "output": "kernel_code", "code_len": code_len},
        "inputs": [{"node": "lr", "shape": [None, None, channels]}],
        **d,
        "pool": [(last, "code")],
        "pool_sub": "GlobalAveragePooling2D",
    }


@register_model("ikc-corrector", recipe="ikc")
def ikc_corrector(nf: int = 64, code_len: int = 10, channels: int = 3, scale: int = 4):
    """IKC's Corrector: a corrected kernel code from an SR image and the current code.

    Seven 5x5 convolutions (the second and fourth with stride 2) with LeakyReLU(0.2) make
    image features at a quarter of the size; two dense layers with LeakyReLU(0.2) make code
    features, tiled over the same size and concatenated *after* the image features; three 1x1
    convolutions (LeakyReLU between them, none after the last) and global average pooling
    give the correction, and the output is correction + code.

    Args:
        nf: filters of the hidden layers (the concatenation has 2 * nf channels).
        code_len: length of the kernel code.
        channels: image channels (RGB in [0, 1] for the published weights).
        scale: the SR factor the Corrector was trained for (x4 for the published weights); the
            network does not depend on it.
    """
    _check("ikc-corrector", nf, code_len, channels)
    d, feat = conv_stack("sr", [1, 2, 1, 2, 1, 1, 1], [nf] * 7)
    d["lrelu"] += [("h0", "h1"), ("h2", "h3"), ("g0", "g1"), ("g2", "g3")]
    return {
        "name": "IKCCorrector",
        "meta": {"scale": scale, "color": "rgb", "output": "kernel_code", "code_len": code_len},
        "inputs": [{"node": "sr", "shape": [None, None, channels]},
                   {"node": "code", "shape": [code_len]}],
        "outputs": ["corrected"],
        **d,
        "code_dense": [("code", "h0"), ("h1", "h2")],
        "code_dense_sub": "Dense",
        "code_dense_par": {"units": nf},
        "tile": [(feat, "h3", "code_map")],                # the code at every position
        "tile_sub": "CodeMap",
        "concat": [(feat, "code_map", "joint")],          # image features first, as in IKC
        "concat_sub": "Concatenate",
        "global_dense": [("joint", "g0"), ("g1", "g2"), ("g3", "g4")],
        "global_dense_sub": "Conv2D",
        "global_dense_par": [{"filters": width, "kernel_size": 1}
                             for width in (2 * nf, nf, code_len)],
        "pool": [("g4", "delta")],
        "pool_sub": "GlobalAveragePooling2D",
        "merge": [("delta", "code", "corrected")],
    }
