"""The degradation spec language: parsing, errors, and the callable Degradation."""
import numpy as np
import pytest
import scipy.ndimage as ndi
import tensorflow as tf

from visionfw.degradation import DegradationError, gaussian_kernel, parse_degradation
from visionfw.degradation import ops
from visionfw.degradation.spec import describe_ops, op_names

HR = np.random.default_rng(1).random((24, 24, 3)).astype(np.float32)


@pytest.mark.parametrize("spec", [
    "bicubic",
    "gaussian(sigma=2.0)+bicubic",
    "gaussian(sigma1=2,sigma2=1,theta=0.5)+direct",
    "gaussian(sigma=2.0)+bicubic+noise(15)",
    "gaussian(sigma=2.0)+bicubic+jpeg(quality=75)",
    "motion(size=15)+direct",
    "gaussian(sigma=0.2~4.0)+bicubic",
    "gaussian( sigma1 = 0.2~4 , sigma2=0.2~4, theta=0~3.14159 ) + bicubic + noise(sigma=0~25)",
    "direct(offset=1)+jpeg(30~95)+quantize(floor)",
])
def test_valid_specs_parse_and_round_trip(spec):
    deg = parse_degradation(spec)
    again = parse_degradation(deg.spec)
    assert again.spec == deg.spec and again == deg
    lr = deg(HR, 2, seed=0)
    assert lr.shape == (12, 12, 3) and lr.dtype == np.float32


def test_canonical_form_and_defaults():
    deg = parse_degradation("gaussian(2)+noise(15)")
    assert deg.spec == ("gaussian(sigma=2.0,size=21,padding=reflect)+noise(sigma=15.0,clip=true)"
                        "+bicubic")  # bicubic is added when no down-sampling op is given
    assert not deg.is_random
    assert parse_degradation("gaussian(sigma=0.2~4)").is_random
    assert parse_degradation("gaussian(sigma=2~2)").spec.startswith("gaussian(sigma=2.0,")


@pytest.mark.parametrize("spec,pattern", [
    ("gausian(sigma=2)", r"unknown degradation op 'gausian'.*valid ops: bicubic, direct, gaussian"),
    ("gaussian(sigm=2)", r"gaussian: unknown argument 'sigm'; valid: sigma, sigma1"),
    ("gaussian(sigma=abc)", r"gaussian: sigma must be a number, got 'abc'"),
    ("gaussian(sigma=-1)", r"gaussian: sigma must be > 0"),
    ("gaussian(sigma=2", r"unclosed '\('"),
    ("gaussian(sigma=2))", r"unmatched '\)'"),
    ("gaussian(sigma=2)+", r"cannot read op '\(empty\)'"),
    ("bicubic+direct", r"only one down-sampling op"),
    ("gaussian(sigma=1)+motion", r"only one blur op"),
    ("gaussian(sigma=2,sigma1=3)", r"not both"),
    ("gaussian(size=21)", r"needs sigma"),
    ("gaussian(sigma=2,size=3~5)", r"size does not take a range"),
    ("noise(sigma=5~1)", r"low > high"),
    ("noise()", r"noise: needs sigma"),
    ("jpeg(101)", r"quality must be <= 100"),
    ("direct(offset=1,2)", r"positional argument '2' after a named one"),
    ("bicubic(1)", r"bicubic: too many arguments"),
    ("quantize(mode=ceil)", r"mode must be one of round, floor"),
    ("noise(15, clip=maybe)", r"clip must be true or false"),
    ("gaussian(sigma=2,sigma=3)", r"given twice"),
    ("2+bicubic", r"cannot read op '2'"),
    ("__import__('os')", r"unknown degradation op '__import__'"),
])
def test_invalid_specs_give_one_line_errors(spec, pattern):
    with pytest.raises(DegradationError, match=pattern) as info:
        parse_degradation(spec)
    assert "\n" not in str(info.value)


def test_runtime_argument_errors():
    with pytest.raises(DegradationError, match="offset must be in 0..1"):
        parse_degradation("direct(offset=3)")(HR, 2)
    with pytest.raises(DegradationError, match="scale must be a positive integer"):
        parse_degradation("bicubic")(HR, 0)
    with pytest.raises(DegradationError, match="no such kernel file"):
        parse_degradation("kernel(path=/nonexistent/k.mat)")


def test_gaussian_bicubic_equals_scipy_reference():
    deg = parse_degradation("gaussian(sigma=2.6)+bicubic")
    lr = deg(HR, 4)
    k = gaussian_kernel(21, 2.6)
    # DAN: reflect padding and a cross-correlation (the Gaussian is symmetric, so = convolution)
    blurred = ndi.correlate(HR.astype(np.float64), k[..., None], mode="mirror").astype(np.float32)
    np.testing.assert_allclose(lr, ops.downsample_bicubic(blurred, 4), atol=2e-6)
    np.testing.assert_allclose(deg.kernel, k, atol=1e-8)


def test_kernel_label_and_seeds():
    deg = parse_degradation("gaussian(sigma1=0.2~4,sigma2=0.2~4,theta=0~3.1416)+bicubic+noise(0~20)")
    a = deg(HR, 2, seed=5)
    ka, la = deg.kernel, deg.labels
    b = deg(HR, 2, seed=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ka, deg.kernel)
    deg(HR, 2, seed=6)
    assert not np.allclose(ka, deg.kernel)
    assert ka.shape == (21, 21) and abs(ka.sum() - 1) < 1e-5
    assert 0 <= la["noise_sigma"] <= 20
    np.testing.assert_array_equal(deg.sample_kernel(seed=5), ka)
    np.testing.assert_array_equal(deg.degrade(HR, 2, seed=5)[1]["kernel"], ka)
    # string seeds (image names) are stable; base seeds change everything
    s1 = deg(HR, 2, seed="baby")
    np.testing.assert_array_equal(s1, deg(HR, 2, seed="baby"))
    assert not np.array_equal(s1, deg(HR, 2, seed="bird"))
    other = parse_degradation(deg.spec, base_seed=1)
    assert not np.array_equal(other(HR, 2, seed="baby"), s1)
    np.testing.assert_array_equal(other(HR, 2, seed="baby"), parse_degradation(deg.spec, base_seed=1)(HR, 2, seed="baby"))


def test_applied_kernel_is_the_label():
    deg = parse_degradation("gaussian(sigma1=0.5~3,sigma2=0.5~3,theta=0~3)+direct")
    lr = deg(HR, 2, seed=9)
    expect = ops.downsample_direct(ops.blur(HR, deg.kernel, "reflect"), 2)
    np.testing.assert_allclose(lr, expect, atol=1e-6)


def test_batches_draw_one_kernel_per_image():
    deg = parse_degradation("gaussian(sigma=0.2~4.0)+bicubic+jpeg(50~90)")
    batch = np.stack([HR, HR, HR])
    lr, labels = deg.degrade(batch, 3, seed=2)
    assert lr.shape == (3, 8, 8, 3) and labels["kernel"].shape == (3, 21, 21)
    assert len({labels["kernel"][i].tobytes() for i in range(3)}) == 3
    assert np.all((labels["jpeg_quality"] >= 50) & (labels["jpeg_quality"] <= 90))
    for i in range(3):
        alone = ops.jpeg_compress(ops.downsample_bicubic(ops.blur(HR, labels["kernel"][i]), 3),
                                  int(labels["jpeg_quality"][i]))
        np.testing.assert_allclose(lr[i], alone, atol=1.5 / 255)


def test_integer_ranges_are_inclusive(shared_data):
    path = shared_data / "kernels" / "USRNet" / "kernels_12.mat"
    deg = parse_degradation(f"kernel(path={path},index=10~11)+direct")
    seen = set()
    for seed in range(12):
        deg(HR, 2, seed=seed)
        seen.add(float(deg.kernel[12, 12]))
    assert len(seen) == 2


def test_degradation_in_tf_data():
    deg = parse_degradation("gaussian(sigma=0.5~3)+bicubic+noise(5)")
    images = np.stack([HR, HR[::-1], HR[:, ::-1]])
    ds = tf.data.Dataset.from_tensor_slices((images, tf.range(3, dtype=tf.int64)))
    ds = ds.map(lambda x, i: deg.degrade(x, 2, seed=i))
    got = list(ds.as_numpy_iterator())
    for i, (lr, labels) in enumerate(got):
        ref_lr, ref_labels = deg.degrade(images[i], 2, seed=i)
        np.testing.assert_allclose(lr, ref_lr, atol=1e-6)
        np.testing.assert_allclose(labels["kernel"], ref_labels["kernel"], atol=1e-7)


def test_motion_and_uint8_input():
    deg = parse_degradation("motion(size=15,length=8)+direct")
    u8 = (HR * 255).astype(np.uint8)
    a = deg(u8, 3, seed=1)
    np.testing.assert_allclose(a, deg(u8.astype(np.float32) / 255, 3, seed=1), atol=1e-6)
    assert deg.kernel.shape == (15, 15) and abs(deg.kernel.sum() - 1) < 1e-5


def test_op_listing():
    assert op_names() == ["bicubic", "direct", "gaussian", "jpeg", "kernel", "motion", "noise",
                          "quantize", "randomblur"]
    assert any(line.startswith("gaussian(sigma, sigma1, sigma2, theta, size=21") for line in describe_ops())


def test_noise_seed_redraws_the_noise_and_nothing_else():
    """``noise_seed``: the same random motion kernel and down-sampling as ``seed`` gives, a
    new noise draw: each draw is the noise-free image plus white noise of sigma 10 / 255,
    the two draws uncorrelated; ``noise_seed`` equal to ``seed`` changes nothing."""
    x = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32) * 0.5 + 0.25
    deg = parse_degradation("motion(size=9)+bicubic+noise(sigma=10,clip=false)", base_seed=3)
    assert deg.has_noise and not parse_degradation("motion(size=9)+bicubic").has_noise
    a = deg(x, 2, seed=0)
    kernel_a = deg.kernel.copy()
    b = deg(x, 2, seed=0, noise_seed=1)
    np.testing.assert_array_equal(deg.kernel, kernel_a)
    np.testing.assert_array_equal(deg(x, 2, seed=0, noise_seed=0), a)
    clean = parse_degradation("motion(size=9)+bicubic", base_seed=3)(x, 2, seed=0)
    na, nb = (a - clean).ravel(), (b - clean).ravel()
    assert np.std(na) == pytest.approx(10 / 255, rel=0.05)
    assert np.std(nb) == pytest.approx(10 / 255, rel=0.05)
    assert abs(np.corrcoef(na, nb)[0, 1]) < 0.05
