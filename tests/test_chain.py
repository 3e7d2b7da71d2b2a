"""The forward-order helper writes exactly the literal dictionary format."""
import pytest

import visionfw
from model_defs.srresnet import upsampling_stages
from visionfw.errors import LinkError
from visionfw.graph.chain import Links


def literal_srresnet(B=16, filters=64, scale=4, batchnorm=True):
    """SRResNet written with node arithmetic, as the model file read before the helper."""
    stages = upsampling_stages(scale)
    U = len(stages)
    # Nodes: 0 input, 1 head conv, 2 PReLU, 3..B+2 residual blocks, then body conv (B+3),
    # body BN (B+4 when present), long skip, U up-sampling stages, tail conv.
    conv = {"kernel_size": (3, 3), "padding": "same", "filters": filters}
    body = B + 3 + int(batchnorm)          # the node the long skip adds to node 2
    skip = body + 1
    d = {
        "name": "SRResNet",
        "meta": {"scale": scale, "color": "rgb"},
        "convo": [(0, 1), (B + 2, B + 3), (skip + U, skip + U + 1)],
        "convo_sub": ["Conv2D"] * 3,
        "convo_par": [{"filters": filters, "kernel_size": (9, 9), "padding": "same"},
                      conv,
                      {"filters": 3, "kernel_size": (9, 9), "padding": "same"}],
        "aactv": [(1, 2)],
        "aactv_sub": ["PReLU"],
        "aactv_par": [{"shared_axes": (1, 2),
                       "alpha_initializer": {"class_name": "Constant", "config": {"value": 0.25}}}],
        "block": [(2 + i, 3 + i) for i in range(B)]
                 + [(skip + i, skip + i + 1) for i in range(U)],
        "block_sub": ["gen_residual_block"] * B + ["gen_last_block"] * U,
        "block_par": [{"batchnorm": batchnorm}] * B + [{"scale": s} for s in stages],
        "merge": [(2, body, skip)],
        "merge_sub": ["Add"],
    }
    if batchnorm:
        d["btnrm"] = [(B + 3, B + 4)]
    return d


@pytest.mark.parametrize("hp", [{}, {"B": 3, "batchnorm": False, "scale": 2},
                                {"B": 1, "scale": 3}, {"B": 2, "scale": 8}])
def test_srresnet_from_the_helper_is_the_literal_dictionary(hp):
    assert visionfw.model_dict("srresnet", **hp) == literal_srresnet(**hp)


def test_links_count_nodes_forward_and_keep_names():
    g = Links("Tiny", meta={"scale": 1})
    x = g.input(shape=(None, None, 3))
    y = g("aactv", g("convo", x, par={"filters": 3, "kernel_size": 3, "padding": "same"}))
    g("merge", x, y, out="out")
    d = g.dict()
    assert d["convo"] == [(0, 1)] and d["aactv"] == [(1, 2)] and d["merge"] == [(0, 2, "out")]
    assert "convo_sub" not in d and d["inputs"] == [{"node": 0, "shape": [None, None, 3]}]
    assert visionfw.build(d).count_params() == 3 * 3 * 3 * 3 + 3
    mixed = Links("Mixed")
    a = mixed.input()
    mixed("convo", mixed("convo", a, sub="Conv2D", par={"filters": 3, "kernel_size": 1}),
          par={"filters": 3, "kernel_size": 1})
    assert mixed.dict()["convo_sub"] == ["Conv2D", "Conv2D"]
    odd = Links("Odd")
    odd("shuffle", odd("shuffle", odd.input()), sub="PixelShuffle")
    with pytest.raises(LinkError, match="has no default layer"):
        odd.dict()
