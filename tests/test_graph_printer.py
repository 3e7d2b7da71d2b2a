"""The layer table: MACs against hand counts, expanded blocks adding up to their rows, the
input size in the header."""
import pytest

import visionfw
from tests.test_models import TINY
from visionfw.graph.printer import format_table, layer_table


def conv(filters, kernel=3, **kw):
    return {"filters": filters, "kernel_size": kernel, "padding": "same", **kw}


def macs_by_link(d, size):
    rows, _ = layer_table(d, input_size=size)
    return {r["family"]: r["macs"] for r in rows}


def test_macs_of_convolutions_and_dense_layers_match_hand_counts():
    d = {"name": "ops",
         "convo": [(0, 1), (1, 2), (2, 3), (4, 5)],
         "convo_par": [conv(8),                           # 3x3, 3 -> 8
                       conv(8, strides=2),                # 3x3, 8 -> 8, stride 2
                       conv(8, groups=2),                 # 3x3, 8 -> 8 in two groups
                       conv(3, kernel=1)],                # 1x1, 8 -> 3
         "depth": [(3, 4)], "depth_sub": "DepthwiseConv2D",
         "depth_par": {"kernel_size": 3, "padding": "same"},
         "deconv": [(5, 6)], "deconv_sub": "Conv2DTranspose",
         "deconv_par": {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"},
         "aactv": [(6, 7)],
         "pool": [(7, 8)], "pool_sub": "GlobalAveragePooling2D",
         "dense": [(8, 9)], "dense_par": {"units": 4},
         "outputs": [9]}
    macs = macs_by_link(d, 16)
    assert macs["convo[0]"] == 16 * 16 * 8 * 3 * 3 * 3          # output positions x kernel
    assert macs["convo[1]"] == 8 * 8 * 8 * 3 * 3 * 8            # a stride-2 output is 8x8
    assert macs["convo[2]"] == 8 * 8 * 8 * 3 * 3 * (8 // 2)     # each filter sees 4 channels
    assert macs["depth[0]"] == 8 * 8 * 8 * 3 * 3                # one 3x3 filter per channel
    assert macs["convo[3]"] == 8 * 8 * 3 * 8
    assert macs["deconv[0]"] == 8 * 8 * 3 * 3 * 3 * 3           # per input position: 8x8
    assert macs["dense[0]"] == 3 * 4
    assert macs["aactv[0]"] == macs["pool[0]"] == 0


def test_expanded_rows_add_up_to_their_block_at_every_depth():
    inner = {"name": "twostage", "inputs": [{"node": "x", "shape": [None, None, 8]}],
             "convo": [("x", "a")], "convo_par": conv(8),
             "block": [("a", "b")], "block_sub": "gen_residual_block",
             "merge": [("x", "b", "y")]}
    d = {"name": "outer", "convo": [(0, 1), (3, 4)], "convo_par": [conv(8), conv(3)],
         "block": [(1, 2), (2, 3)], "block_sub": [inner, "gen_last_block"],
         "block_par": [None, {"scale": 2}], "meta": {"scale": 2}}
    rows, totals = layer_table(d, input_size=16, expand=True)
    assert [r["depth"] for r in rows] == [0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 1, 0, 1, 1, 1, 0]
    for i, row in enumerate(rows):
        below = []
        for r in rows[i + 1:]:
            if r["depth"] <= row["depth"]:
                break
            if r["depth"] == row["depth"] + 1:
                below.append(r)
        if below:
            assert row["macs"] == sum(r["macs"] for r in below), row["family"]
            assert row["count"] == sum(r["count"] for r in below), row["family"]
    top = [r for r in rows if r["depth"] == 0]
    assert totals["macs"] == sum(r["macs"] for r in top)
    assert totals["total"] == sum(r["count"] for r in top)
    # the nested residual block: two 3x3 convolutions 8 -> 8 on 16x16
    residual = next(r for r in rows if r["depth"] == 1 and r["family"].strip() == "block_0")
    assert residual["macs"] == 2 * 16 * 16 * 8 * 3 * 3 * 8
    assert [r["family"].strip() for r in rows if r["depth"] == 2][:2] == ["conv1", "bn1"]
    text = format_table(rows, totals)
    assert "for one 16x16 LR image; FLOPs = 2 x MACs" in text.splitlines()[1]
    assert f"Total MACs: {totals['macs'] / 1e6:.2f}M   FLOPs: {2 * totals['macs'] / 1e6:.2f}M" \
        in text


def test_without_an_input_size_the_table_has_no_macs():
    d = visionfw.model_dict("srresnet", B=1, filters=8, scale=2)
    rows, totals = layer_table(d, input_size=None)
    assert rows[-1]["output_shape"] == "(?, ?, ?, 3)" and totals["macs"] is None
    assert "MACs" not in format_table(rows, totals)


@pytest.mark.parametrize("name", visionfw.model_names())
def test_every_registered_model_has_a_table_whose_rows_add_up(name):
    rows, totals = layer_table(visionfw.model_dict(name, **TINY[name]), input_size=8,
                               expand=True)
    top = [r for r in rows if r["depth"] == 0]
    assert sum(r["count"] for r in top) == totals["total"]
    known = [r["macs"] for r in top if r["macs"] is not None]
    assert totals["macs"] == sum(known)
    # USRNet's HR size follows its scale input: its priors' sizes are known at run time only
    assert totals["macs_unknown"] == (len(top) - len(known))
    assert (totals["macs_unknown"] > 0) == (name == "usrnet")
    assert (totals["macs"] > 0) == (name != "bicubic")
