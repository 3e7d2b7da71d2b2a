"""PyTorch state dicts -> link-dictionary models: layouts against numpy references, one-line
errors, parity with the published weights' PyTorch outputs, the convert command and VDSR's
published Set5 figure."""
import numpy as np
import pytest
from click.testing import CliRunner

import visionfw
from visionfw.convert import (ConversionError, convert_model, convert_state, load_state,
                              published_parity)
from visionfw.evaluate import (Dataset, EvaluationError, evaluate, rgb_to_ycbcr_full,
                               ycbcr_full_to_rgb)
from visionfw.imageio import read_image

RNG = np.random.default_rng(7)
PUBLISHED_PARITY = published_parity()


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# ---- numpy references with PyTorch semantics (NCHW, OIHW weights) ---------------------------

def torch_conv2d(x, w, b, stride=1, padding=0):
    """``torch.nn.functional.conv2d`` for one image: x (C, H, W), w (O, C, kh, kw)."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    o, _, kh, kw = w.shape
    h = (x.shape[1] - kh) // stride + 1
    wd = (x.shape[2] - kw) // stride + 1
    out = np.zeros((o, h, wd))
    for i in range(h):
        for j in range(wd):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, i, j] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2]))
    return out + b[:, None, None]


def torch_conv_transpose2d(x, w, b, stride, padding, output_padding):
    """``torch.nn.functional.conv_transpose2d``: x (C, H, W), w (C, O, kh, kw)."""
    c, h, wd = x.shape
    _, o, kh, kw = w.shape
    full = np.zeros((o, (h - 1) * stride + kh + output_padding,
                     (wd - 1) * stride + kw + output_padding))
    for i in range(h):
        for j in range(wd):
            full[:, i * stride:i * stride + kh, j * stride:j * stride + kw] += \
                np.tensordot(x[:, i, j], w, axes=([0], [0]))
    hout = (h - 1) * stride - 2 * padding + kh + output_padding
    wout = (wd - 1) * stride - 2 * padding + kw + output_padding
    return full[:, padding:padding + hout, padding:padding + wout] + b[:, None, None]


def torch_pixel_shuffle(x, r):
    """``nn.PixelShuffle``: out[c, h*r + i, w*r + j] = x[c*r*r + i*r + j, h, w]."""
    c, h, w = x.shape
    out = np.zeros((c // (r * r), h * r, w * r))
    for ch in range(c // (r * r)):
        for i in range(r):
            for j in range(r):
                out[ch, i::r, j::r] = x[ch * r * r + i * r + j]
    return out


def keras_run(d, state, x_chw):
    """Build dictionary ``d``, convert ``state`` into it, run one CHW image, return CHW."""
    model = visionfw.build(d)
    convert_state(model, state)
    y = model.predict(np.transpose(x_chw, (1, 2, 0))[None].astype(np.float32), verbose=0)
    return np.transpose(y[0], (2, 0, 1))


def chain(*links):
    """A one-chain dictionary: ``links`` are (sub, par) pairs applied one after another."""
    return {"name": "chain", "inputs": [{"node": 0, "shape": [None, None, 3]}],
            "step": [(i, i + 1) for i in range(len(links))],
            "step_sub": [s for s, _ in links], "step_par": [p for _, p in links]}


# ---- layouts, numerically ---------------------------------------------------------------------

def test_conv2d_layout_matches_a_numpy_convolution():
    x, w, b = rand(3, 9, 11), rand(5, 3, 3, 2), rand(5)      # non-square kernel: H and W differ
    d = chain(("Conv2D", {"filters": 5, "kernel_size": (3, 2), "padding": "valid"}))
    got = keras_run(d, {"conv.weight": w, "conv.bias": b}, x)
    np.testing.assert_allclose(got, torch_conv2d(x, w, b), atol=1e-4)


@pytest.mark.parametrize("stride", [2, 3])
def test_transposed_conv_layout_matches_a_numpy_transposed_convolution(stride):
    # FSRCNN's up-sampling: ConvTranspose2d(k=9, stride, padding=4, output_padding=stride-1),
    # built as Conv2DTranspose 'valid' + crop (4, 5 - stride); no spatial flip of the kernel.
    x, w, b = rand(3, 5, 6), rand(3, 2, 9, 9), rand(2)
    d = chain(("Conv2DTranspose", {"filters": 2, "kernel_size": 9, "strides": stride,
                                   "padding": "valid"}),
              ("Cropping2D", {"cropping": ((4, 5 - stride), (4, 5 - stride))}))
    got = keras_run(d, {"deconv.weight": w, "deconv.bias": b}, x)
    want = torch_conv_transpose2d(x, w, b, stride, padding=4, output_padding=stride - 1)
    assert got.shape == want.shape == (2, 5 * stride, 6 * stride)
    np.testing.assert_allclose(got, want, atol=1e-4)
    flipped = keras_run(d, {"deconv.weight": w[:, :, ::-1, ::-1].copy(), "deconv.bias": b}, x)
    assert np.abs(flipped - want).max() > 0.1     # the layout really is orientation-sensitive


def test_dense_prelu_and_batchnorm_layouts():
    x = rand(4, 6)
    w1, b1, a = rand(5, 6), rand(5), np.abs(rand(5)) * 0.5
    gamma, beta, mean, var = rand(5), rand(5), rand(5), np.abs(rand(5)) + 0.5
    d = {"name": "mlp", "inputs": [{"node": 0, "shape": [6]}],
         "dense": [(0, 1)], "dense_par": {"units": 5},
         "act": [(1, 2)], "act_sub": "PReLU",
         "bn": [(2, 3)], "bn_sub": "BatchNormalization", "bn_par": {"epsilon": 1e-5}}
    state = {"fc.weight": w1, "fc.bias": b1, "act.weight": a,
             "bn.weight": gamma, "bn.bias": beta, "bn.running_mean": mean,
             "bn.running_var": var, "bn.num_batches_tracked": np.array(12, np.int64)}
    model = visionfw.build(d)
    plan = convert_state(model, state)
    assert "bn.num_batches_tracked" not in [p.torch_key for p in plan]
    h = x @ w1.T + b1
    h = np.where(h >= 0, h, a * h)
    want = (h - mean) / np.sqrt(var + 1e-5) * gamma + beta
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=1e-4)


def test_prelu_per_channel_alpha_on_feature_maps():
    x, a = rand(3, 4, 5), np.array([0.1, 0.5, 2.0], np.float32)
    d = chain(("PReLU", {"shared_axes": (1, 2)}))
    got = keras_run(d, {"act.weight": a}, x)
    np.testing.assert_allclose(got, np.where(x >= 0, x, a[:, None, None] * x), atol=1e-6)


def test_torch_order_pixel_shuffle_needs_no_weight_permutation():
    x, w, b = rand(3, 4, 5), rand(3 * 4, 3, 3, 3), rand(3 * 4)
    d = chain(("Conv2D", {"filters": 12, "kernel_size": 3, "padding": "same"}),
              ("PixelShuffle", {"scale": 2, "channel_order": "torch"}))
    got = keras_run(d, {"conv.weight": w, "conv.bias": b}, x)
    want = torch_pixel_shuffle(torch_conv2d(x, w, b, padding=1), 2)
    np.testing.assert_allclose(got, want, atol=1e-4)


# ---- pairing and errors ----------------------------------------------------------------------

def two_convs():
    return chain(("Conv2D", {"filters": 4, "kernel_size": 3, "padding": "same"}),
                 ("Conv2D", {"filters": 2, "kernel_size": 1}))


def two_conv_state():
    return {"a.weight": rand(4, 3, 3, 3), "a.bias": rand(4), "b.weight": rand(2, 4, 1, 1),
            "b.bias": rand(2)}


def one_line_error(model, state, **kw):
    with pytest.raises(ConversionError) as info:
        convert_state(model, state, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_misshaped_tensor_is_named_and_nothing_is_assigned():
    model = visionfw.build(two_convs())
    before = [w.numpy().copy() for w in model.weights]
    state = two_conv_state()
    state["b.weight"] = rand(3, 4, 1, 1)
    message = one_line_error(model, state)
    assert "b.weight has shape (3, 4, 1, 1) but step_1/kernel (Conv2D) needs (2, 4, 1, 1)" \
        in message
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))


def test_an_unmatched_tensor_and_a_missing_one_are_named():
    model = visionfw.build(two_convs())
    state = {**two_conv_state(), "c.weight": rand(2, 2, 1, 1)}
    assert "tensors left unmatched: c.weight" in one_line_error(model, state)
    state = two_conv_state()
    del state["b.bias"]
    assert "model weights without a tensor: step_1/bias (module b has weight)" in \
        one_line_error(model, state)


def test_a_name_mapping_overrides_the_order():
    state = two_conv_state()
    shuffled = {k: state[k] for k in ("b.weight", "b.bias", "a.weight", "a.bias")}
    model = visionfw.build(two_convs())
    assert "b.weight has shape" in one_line_error(model, shuffled)
    convert_state(model, shuffled, names={"step_0/kernel": "a.weight", "step_0/bias": "a.bias"})
    np.testing.assert_array_equal(model.get_layer("step_1").bias.numpy(), state["b.bias"])
    np.testing.assert_array_equal(model.get_layer("step_0").kernel.numpy(),
                                  state["a.weight"].transpose(2, 3, 1, 0))
    assert "which the model does not have" in one_line_error(
        model, state, names={"step_9/kernel": "a.weight"})
    assert "'zz.weight', which state dict lacks" in one_line_error(
        model, state, names={"step_0/kernel": "zz.weight"})


def test_convert_command_errors_are_one_line(tmp_path):
    from visionfw.__main__ import main

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    runner = CliRunner()
    result = runner.invoke(main, ["convert", "vdsr-y", str(bad), str(tmp_path / "o.weights.h5")])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith(f"error: {bad}:")
    result = runner.invoke(main, ["convert", "vdsr-yy", str(bad), str(tmp_path / "o.weights.h5")])
    assert "did you mean 'vdsr-y'" in result.output and result.exit_code == 2
    assert list(tmp_path.iterdir()) == [bad]


# ---- YCbCr of the Nhat-Thanh models, and models whose output is smaller than their input --------

def test_full_range_ycbcr_known_values_and_round_trip():
    rgb = np.array([[[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]], np.float32)
    # red: Y 76.245, Cb 128 - 43.0287, Cr 128 + 127.5
    want = np.array([[255, 128, 128], [76.245, 84.9713, 255.5], [127.5, 128, 128]])
    np.testing.assert_allclose(rgb_to_ycbcr_full(rgb)[0] * 255, want, atol=1e-3)
    # the source repositories' rgb2ycbcr: Y clipped to [16, 235], Cb/Cr to [16, 240], truncated
    np.testing.assert_array_equal(rgb_to_ycbcr_full(rgb, source_clip=True)[0] * 255,
                                  [[235, 128, 128], [76, 84, 240], [127, 128, 128]])
    x = RNG.random((6, 7, 3), dtype=np.float32)
    np.testing.assert_allclose(ycbcr_full_to_rgb(rgb_to_ycbcr_full(x)), x, atol=1e-4)


def gt_images():
    rng = np.random.default_rng(4)
    y, x = np.mgrid[:48, :40] / 7.0
    base = np.stack([np.sin(x), np.cos(y * 1.3), np.sin(x * 0.7 + y)], -1) * 0.4 + 0.5
    img = np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1)
    return Dataset.from_arrays("toy", [("a", (img * 255).round().astype(np.uint8))])


def test_a_shrinking_model_on_upsampled_input_is_scored_on_the_centre(tmp_path):
    # A model that crops 3 px off each side of the bicubic image: it must score exactly
    # as bicubic does on the same centre, and its saved picture must be the bicubic one.
    d = {"name": "centre", "meta": {"scale": 2, "color": "rgb", "input": "upsampled",
                                    "shrink": 6},
         "crop": [(0, 1)], "crop_sub": "Cropping2D", "crop_par": {"cropping": 3}}
    model = visionfw.build(d)
    report = evaluate(model, [gt_images()], save_dir=tmp_path)
    r = report["results"][0]
    assert r["psnr"] == pytest.approx(r["bicubic_psnr"], abs=1e-9)
    assert report["protocol"]["model_margin"] == 3
    assert "3 px further in" in report["protocol"]["description"]
    saved = read_image(tmp_path / "toy" / "a.png")
    assert saved.shape == (48, 40, 3)
    with pytest.raises(EvaluationError, match="--tile cannot"):
        evaluate(model, [gt_images()], tile=16)


def test_a_y_srcnn_is_fed_the_bicubic_y_and_saves_a_full_colour_image(tmp_path):
    model = visionfw.build_model("srcnn", k=1, n1=4, n2=4, color="y", compile=False)
    report = evaluate(model, [gt_images()], self_ensemble=True, save_dir=tmp_path)
    assert report["protocol"]["model_margin"] == 6
    assert np.isfinite(report["results"][0]["psnr"])
    assert read_image(tmp_path / "toy" / "a.png").shape == (48, 40, 3)


def test_test_py_refuses_kernel_code_models():
    model = visionfw.build_model("ikc-predictor", nf=4, code_len=3, compile=False)
    with pytest.raises(EvaluationError, match="predicts a kernel code, not an image"):
        evaluate(model, [gt_images()])


# ---- the published weights -------------------------------------------------------------------

@pytest.mark.parametrize("name, hp, checkpoint, vectors", PUBLISHED_PARITY,
                         ids=[p[3] for p in PUBLISHED_PARITY])
def test_converted_models_reproduce_pytorch_outputs(shared_weights, name, hp, checkpoint,
                                                    vectors):
    model, _ = convert_model(name, shared_weights / checkpoint, **hp)
    z = np.load(shared_weights / "parity" / f"{vectors}.npz")
    x = [z["input_nhwc"], z["code"]] if "code" in z.files else z["input_nhwc"]
    y = model.predict(x, verbose=0)
    assert y.shape == z["output_nhwc"].shape
    assert np.abs(y - z["output_nhwc"]).max() < 1e-4


CHECKPOINTS = (
    [("srcnn", {"k": k}, f"srcnn/SRCNN-9{k}5.pt") for k in (1, 3, 5)]
    + [(m, {"scale": s}, f"{m}/{m.upper()}-x{s}.pt") for m in ("fsrcnn", "espcn") for s in (2, 3, 4)]
    + [("ikc-predictor", {}, "ikc/Predictor_latest_G.pth"),
       ("ikc-corrector", {}, "ikc/Corrector_latest_G.pth"),
       ("vdsr-y", {}, "vdsr/model_epoch_50.pth")])


def test_pth_and_npz_routes_give_identical_weights(shared_weights):
    for name, hp, checkpoint in CHECKPOINTS:
        path = shared_weights / checkpoint
        from_torch, _ = convert_model(name, path, **hp)
        from_npz, _ = convert_model(name, path.with_suffix(".npz"), **hp)
        for a, b in zip(from_torch.weights, from_npz.weights):
            assert a.path == b.path
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{checkpoint} {a.path}")


def test_vdsr_pickle_lists_modules_out_of_forward_order(shared_weights):
    # Why vdsr-y registers a name mapping: by order alone the pickled model does not fit.
    state = load_state(shared_weights / "vdsr/model_epoch_50.pth")
    assert next(iter(state)) == "residual_layer.0.conv.weight"
    model = visionfw.build_model("vdsr-y", compile=False)
    assert "residual_layer.0.conv.weight has shape (64, 64, 3, 3) but convo_0/kernel" in \
        one_line_error(model, state)


def test_convert_command_then_test_py_reaches_vdsr_published_set5_x4(shared_weights,
                                                                       shared_data, tmp_path):
    from visionfw.__main__ import main
    from visionfw.cli.evaluate import load_for_test
    from visionfw.evaluate import resolve_dataset

    out = tmp_path / "vdsr.weights.h5"
    result = CliRunner().invoke(main, ["convert", "vdsr-y",
                                       str(shared_weights / "vdsr/model_epoch_50.pth"),
                                       str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert visionfw.read_spec(out)["model"] == "vdsr-y"
    model = load_for_test(None, str(out), (), 4)       # test.py --weights OUT --scale 4
    report = evaluate(model, [resolve_dataset("Set5", shared_data / "benchmark")], scale=4)
    assert report["results"][0]["psnr"] == pytest.approx(31.45, abs=0.15)


def test_convert_suggests_the_variant_of_the_family_the_weights_fit(tmp_path):
    """Y-only VDSR weights named as the RGB ``vdsr``: the error names ``vdsr-y``."""
    from visionfw.__main__ import main

    state = {"residual_layer.0.conv.weight": rand(4, 4, 3, 3), "input.weight": rand(4, 1, 3, 3),
             "output.weight": rand(1, 4, 3, 3)}
    path = tmp_path / "y_only.npz"
    np.savez(path, **state)
    out = tmp_path / "o.weights.h5"
    result = CliRunner().invoke(main, ["convert", "vdsr", str(path), str(out), "--param",
                                       "depth=3", "--param", "filters=4"])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("error: y_only.npz fits model vdsr-y, not vdsr: "
                                    f"python -m visionfw convert vdsr-y {path} {out}")
    assert not out.exists()
    # and that command converts it
    result = CliRunner().invoke(main, ["convert", "vdsr-y", str(path), str(out), "--param",
                                       "depth=3", "--param", "filters=4", "--quiet"])
    assert result.exit_code == 0 and out.exists()


def test_convert_creates_a_missing_output_folder_and_refuses_an_unwritable_one(tmp_path):
    """The README's first screen converts into runs/ before anything created it."""
    from visionfw.__main__ import main

    state = {"residual_layer.0.conv.weight": rand(4, 4, 3, 3), "input.weight": rand(4, 1, 3, 3),
             "output.weight": rand(1, 4, 3, 3)}
    path = tmp_path / "y_only.npz"
    np.savez(path, **state)
    out = tmp_path / "runs" / "new" / "o.weights.h5"
    args = [str(path), "--param", "depth=3", "--param", "filters=4", "--quiet"]
    result = CliRunner().invoke(main, ["convert", "vdsr-y", args[0], str(out), *args[1:]])
    assert result.exit_code == 0 and out.exists(), result.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = blocker / "o.weights.h5"
    result = CliRunner().invoke(main, ["convert", "vdsr-y", args[0], str(bad), *args[1:]])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert f"folder {blocker} is not writable" in result.output
