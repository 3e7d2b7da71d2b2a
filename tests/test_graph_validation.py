"""Malformed dictionaries give the framework's own error, naming the link, never a bare traceback."""
import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import visionfw
from visionfw import LinkError


def base():
    """A small valid dictionary: conv, ReLU, conv, skip."""
    return {"name": "small",
            "convo": [(0, 1), (2, 3)],
            "convo_sub": ["Conv2D", "Conv2D"],
            "convo_par": [{"filters": 3, "kernel_size": 3, "padding": "same"},
                          {"filters": 3, "kernel_size": 3, "padding": "same"}],
            "aactv": [(1, 2)], "aactv_sub": ["ReLU"],
            "merge": [(0, 3, 4)], "merge_sub": ["Add"]}


def test_base_is_valid():
    assert visionfw.build(base()).output.shape[-1] == 3


def with_(**changes):
    d = base()
    for key, value in changes.items():
        if value is None:
            d.pop(key)
        else:
            d[key] = value
    return d


MALFORMED = [
    # (dictionary, pattern the message must match)
    (with_(convo_sub=["Conv2d", "Conv2D"]),
     r"^convo\[0\] \(0 -> 1\): unknown layer or block 'Conv2d'; did you mean 'Conv2D'\?"),
    (with_(aactv=[(1, 2)], merge=[(0, 3, 2)]),
     r"^merge\[0\] \(0, 3 -> 2\): node 2 is produced twice \(also by aactv\[0\]\)"),
    (with_(merge=[(0, 7, 4)]),
     r"^merge\[0\] \(0, 7 -> 4\): node 7 is used but never produced"),
    (with_(convo=[(0, 1), (4, 3)]),
     r"convo\[1\] \(4 -> 3\)|merge\[0\].*cycle|cycle through nodes"),
    (with_(convo_sub=["Conv2D"]),
     r"^convo_sub: 'convo_sub' has 1 entries but 'convo' has 2 links"),
    (with_(convo_par=[{"filters": 3, "kernel_size": 3, "padding": "same"}] * 3),
     r"^convo_par: 'convo_par' has 3 entries but 'convo' has 2 links"),
    (with_(aactv=[(1, 2), (1, 9)], aactv_sub=["ReLU", "ReLU"]),
     r"^aactv\[1\] \(1 -> 9\): node 9 is produced but never used"),
    (with_(convo_par=[{"filters": 3, "kernel_size": 3, "padding": "same"},
                      {"filters": 5, "kernel_size": 3, "padding": "same"}]),
     r"^merge\[0\] \(0, 3 -> 4\): Add needs inputs of equal shape, got \(None, None, None, 3\) "
     r"from node 0 and \(None, None, None, 5\) from node 3"),
    (with_(convo=[(0, 1), 7]), r"^convo\[1\]: a link is a tuple"),
    (with_(convo=[(0, 1), (2,)]), r"^convo\[1\] .*needs at least one input node"),
    (with_(convo=[(0, 1), (2.5, 3)]), r"^convo\[1\] .*input 2.5 is not a node id"),
    (with_(convo_par=[{"filters": 3, "kernel_size": 3, "padding": "same"}, "same"]),
     r"^convo\[1\] .*must be a dict of keyword arguments"),
    (with_(convo_par=[{"filters": 3, "kernel_size": 3, "paddin": "same"},
                      {"filters": 3, "kernel_size": 3, "padding": "same"}]),
     r"^convo\[0\] \(0 -> 1\): cannot make Conv2D with parameters"),
    (with_(merge=[(3, 4)]), r"^merge\[0\] \(3 -> 4\): Add takes at least 2 input\(s\), the link gives 1"),
    (with_(aactv=[(1, 2, 9)], aactv_sub=["ReLU"]),
     r"^aactv\[0\] \(1, 2 -> 9\)|^aactv\[0\] .*ReLU takes 1 input"),
    (with_(convo="not a list"), r"^convo: a family holds a list of links"),
    (with_(upsmp_sub=["PixelShuffle"]), r"^upsmp_sub: 'upsmp_sub' has no family 'upsmp'"),
    (with_(extra=[(3, 5)]), r"^extra: family 'extra' has no 'extra_sub' list and no default"),
    (with_(outputs=[4, 8]), r"^outputs\[1\]: output node 8 is never produced"),
    (with_(inputs=[{"node": 0, "shap": [None, None, 3]}]), r"^inputs\[0\]: unknown input key"),
    (with_(inputs=[0, "code"]), r"^inputs: input node 'code' is never used"),
    (with_(block=[(4, 5)], block_sub=["gen_residual_block"], block_par=[{"filterz": 3}],
           outputs=[5]), r"^block\[0\] \(4 -> 5\): block gen_residual_block has no parameter"),
    (with_(name=""), r"^name: 'name' must be a non-empty string"),
    (with_(convo_sub=[42, "Conv2D"]), r"^convo\[0\] .*must be a layer/block name or a link dict"),
    ({"name": "empty"}, r"the dictionary has no links"),
    ("not a dict", r"a link dictionary must be a dict"),
]


@pytest.mark.parametrize("d,pattern", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_dictionary_gives_link_error(d, pattern):
    with pytest.raises(LinkError, match=pattern) as info:
        visionfw.build(d)
    assert "\n" not in str(info.value)


def test_cycle_is_reported_with_its_nodes():
    d = {"name": "loop", "convo": [(0, 1), (3, 2)], "aactv": [(2, 3)],
         "merge": [(1, 2, 4)],
         "convo_par": [{"filters": 3, "kernel_size": 3, "padding": "same"}] * 2}
    with pytest.raises(LinkError, match=r"cycle through nodes .*2.*3|cycle through nodes .*3.*2"):
        visionfw.validate(d)


def test_error_carries_structured_fields():
    with pytest.raises(LinkError) as info:
        visionfw.build(with_(convo_sub=["Conv2d", "Conv2D"]))
    err = info.value
    assert (err.family, err.index, err.link) == ("convo", 0, (0, 1))


# ---- the shape probe: merges of maps of different sizes fail at build time ---------------------

def lr_and_2x():
    """An LR feature map concatenated with its 2x up-sampling: fine in channels, wrong in size."""
    return {"name": "mismatch", "inputs": ["lr"],
            "convo": [("lr", "feat"), ("joint", "sr")],
            "convo_par": [{"filters": 8, "kernel_size": 3, "padding": "same"},
                          {"filters": 3, "kernel_size": 3, "padding": "same"}],
            "up": [("feat", "feat2x")], "up_sub": "UpSampling2D",
            "cat": [("feat", "feat2x", "joint")], "cat_sub": "Concatenate"}


def test_concatenate_of_an_lr_and_a_2x_map_fails_at_build_naming_the_link():
    with pytest.raises(LinkError) as info:
        visionfw.build(lr_and_2x())
    message = str(info.value)
    assert message == (
        "cat[0] ('feat', 'feat2x' -> 'joint'): Concatenate on axis -1 needs equal shapes "
        "elsewhere, got (None, 48, 48, 8) from node 'feat' and (None, 96, 96, 8) from node "
        "'feat2x' (shape probe: a 48x48 LR input; meta['probe_size'] sets another)")
    assert info.value.__context__ is None          # no TensorFlow error behind it
    assert (info.value.family, info.value.index) == ("cat", 0)


def test_add_of_a_strided_map_inside_a_nested_block_names_the_inner_link():
    inner = {"name": "down", "convo": [(0, 1)],
             "convo_par": [{"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}],
             "merge": [(0, 1, 2)]}
    with pytest.raises(LinkError, match=r"^block\[0\] down > merge\[0\] \(0, 1 -> 2\): Add needs "
                                        r"inputs of equal shape, got \(None, 48, 48, 3\) from node "
                                        r"0 and \(None, 24, 24, 3\) from node 1 \(shape probe"):
        visionfw.build({"name": "outer", "block": [(0, 1)], "block_sub": [inner]})


def hourglass(depth=5):
    """Halved ``depth`` times by stride-2 convolutions, doubled back, added to the input: fits
    images whose side is a multiple of 2**depth only."""
    same = {"filters": 3, "kernel_size": 3, "padding": "same"}
    return {"name": "hourglass",
            "down": [(i, i + 1) for i in range(depth)], "down_sub": "Conv2D",
            "down_par": {**same, "strides": 2},
            "up": [(depth + i, depth + i + 1) for i in range(depth)], "up_sub": "UpSampling2D",
            "merge": [(0, 2 * depth, 2 * depth + 1)]}


def test_probe_size_is_overridable_and_the_probe_can_be_skipped():
    with pytest.raises(LinkError, match=r"^merge\[0\] .*\(None, 48, 48, 3\) from node 0 and "
                                        r"\(None, 64, 64, 3\) from node 10"):
        visionfw.build(hourglass())               # 48 -> 24 -> 12 -> 6 -> 3 -> 2 -> ... 64
    params = 5 * (3 * 3 * 3 * 3 + 3)
    assert visionfw.build(hourglass(), probe_size=64).count_params() == params
    declared = {**hourglass(), "meta": {"probe_size": 64}}   # what a JSON model says
    assert visionfw.build(declared).count_params() == params
    with pytest.raises(LinkError, match=r"^meta: 'probe_size' must be a side in pixels"):
        visionfw.build({**hourglass(), "meta": {"probe_size": "64"}})
    visionfw.build(lr_and_2x(), probe_size=0)     # no probe: only the channels are checked


def test_probe_sizes_follow_each_input_role():
    from visionfw.graph.builder import sized_inputs

    for name, hp, want in [
        ("srcnn", {"scale": 3}, [(48 * 3 + 14, 48 * 3 + 14, 3)]),     # the up-sampled image
        ("dan-estimator", {"scale": 2}, [(48, 48, 3), (96, 96, 3)]),   # LR and SR images
        ("usrnet", {"scale": 2}, [(48, 48, 3), (None, None), (), ()]),  # a kernel: any size
    ]:
        d = visionfw.model_dict(name, **hp)
        assert sized_inputs(visionfw.validate(d), d, 48) == want, name


# ---- dangling nodes name the forgotten node ----------------------------------------------------

def test_forgotten_node_is_named_not_the_intended_output():
    # the forgotten link comes last, after the one making the intended output (node 4)
    d = {**base(), "extra": [(1, 9)], "extra_sub": ["ReLU"]}
    with pytest.raises(LinkError) as info:
        visionfw.validate(d)
    message = str(info.value)
    assert message.startswith("extra[0] (1 -> 9): node 9 is produced but never used, so the "
                              "model has two candidate outputs: 4 and 9. Node 4 looks like the "
                              "output (4 links lead to it, 2 to node 9)")
    assert message.endswith("'outputs': [4]") and "\n" not in message
    # declared first, the forgotten link is still the one named
    early = {"name": "early", "extra": [(1, 9)], "extra_sub": ["ReLU"],
             **{k: v for k, v in base().items() if k != "name"}}
    with pytest.raises(LinkError, match=r"^extra\[0\] \(1 -> 9\): node 9 .* two candidate "
                                        r"outputs: (9 and 4|4 and 9)\. Node 4 looks like"):
        visionfw.validate(early)


def test_three_sinks_and_explicit_outputs():
    d = {**base(), "extra": [(1, 9), (2, 10)], "extra_sub": ["ReLU", "ReLU"]}
    with pytest.raises(LinkError, match=r"^extra\[0\] \(1 -> 9\): .*3 candidate outputs: "
                                        r"4, 9 and 10\. Node 4 looks like the output"):
        visionfw.validate(d)
    # with 'outputs', a node nothing uses is named as such
    with pytest.raises(LinkError, match=r"^extra\[1\] \(2 -> 10\): node 10 is produced but never "
                                        r"used and is not an output"):
        visionfw.validate({**d, "outputs": [4, 9]})
    assert visionfw.validate({**d, "outputs": [4, 9, 10]}).outputs == [4, 9, 10]


# ---- random malformed dictionaries ------------------------------------------------------------

node_values = st.one_of(st.integers(-2, 9), st.sampled_from(["a", "", "x1"]), st.none(),
                        st.floats(allow_nan=False), st.lists(st.integers(0, 5), max_size=3),
                        st.booleans())
junk = st.one_of(st.none(), st.integers(), st.text(max_size=6), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=4), st.integers(), max_size=2), st.booleans())


@st.composite
def mutated(draw):
    d = copy.deepcopy(base())
    d = {k: (list(v) if isinstance(v, list) else v) for k, v in d.items()}
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["node", "sub", "par", "drop_link", "drop_key", "add_key",
                                     "family_junk", "dup_link", "truncate"]))
        families = [k for k in d if k in ("convo", "aactv", "merge")]
        if not families:
            break
        fam = draw(st.sampled_from(families))
        links = d[fam]
        if kind == "node" and isinstance(links, list) and links:
            i = draw(st.integers(0, len(links) - 1))
            link = list(links[i]) if isinstance(links[i], (list, tuple)) else [links[i]]
            if link:
                j = draw(st.integers(0, len(link) - 1))
                link[j] = draw(node_values)
            links[i] = tuple(link)
        elif kind == "sub" and isinstance(d.get(fam + "_sub"), list) and d[fam + "_sub"]:
            subs = d[fam + "_sub"]
            subs[draw(st.integers(0, len(subs) - 1))] = draw(st.one_of(
                st.sampled_from(["Conv2d", "Dense", "Nope", "gen_last_block", "Add"]), junk))
        elif kind == "par":
            d[fam + "_par"] = draw(st.one_of(junk, st.lists(junk, max_size=3)))
        elif kind == "drop_link" and isinstance(links, list) and links:
            links.pop(draw(st.integers(0, len(links) - 1)))
        elif kind == "drop_key":
            d.pop(draw(st.sampled_from(sorted(d))), None)
        elif kind == "add_key":
            d[draw(st.sampled_from(["outputs", "inputs", "bogus_sub", "meta", "name", "zz"]))] = \
                draw(st.one_of(junk, st.lists(node_values, max_size=3)))
        elif kind == "family_junk":
            d[fam] = draw(junk)
        elif kind == "dup_link" and isinstance(links, list) and links:
            links.append(links[0])
        elif kind == "truncate" and isinstance(d.get(fam + "_sub"), list):
            d[fam + "_sub"] = d[fam + "_sub"][:-1]
    return d


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_random_malformed_dictionaries_never_escape_as_other_errors(d):
    try:
        visionfw.validate(d)
    except LinkError as exc:
        assert "\n" not in str(exc)
        return
    # it passed validation: building either works or fails with a LinkError
    try:
        visionfw.build(d)
    except LinkError:
        pass
