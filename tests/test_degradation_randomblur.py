"""The ``randomblur`` op: a different kind of kernel (isotropic, anisotropic, motion) per image."""
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.optimize as opt
import tensorflow as tf

from visionfw.degradation import DegradationError, gaussian_kernel, parse_degradation
from visionfw.degradation.kernels import centre_of_mass
from visionfw.degradation.spec import describe_ops, op_names

N = 400  # draws for the statistical tests


def _kernels(spec, n=N, seed=0):
    return parse_degradation(spec).sample_kernel(seed=seed, batch=n)


def _point_symmetric(k, tol=1e-6):
    """Per kernel: k == k rotated by 180 degrees (every Gaussian; motion kernels almost never)."""
    return np.abs(k - k[:, ::-1, ::-1]).max(axis=(1, 2)) <= tol * k.max(axis=(1, 2))


def _rotation_invariant(k, tol=1e-6):
    """Per kernel: k == k.T and k == rot90(k) (isotropic Gaussians only)."""
    d = np.maximum(np.abs(k - np.swapaxes(k, 1, 2)).max(axis=(1, 2)),
                   np.abs(k - np.rot90(k, axes=(1, 2))).max(axis=(1, 2)))
    return d <= tol * k.max(axis=(1, 2))


def _within_binomial(count, n, p, sds=4.0):
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1 - p))


def _moments(k):
    """Second central moments (xx, xy, yy) about the origin tap; x = column, y = row."""
    size = k.shape[-1]
    off = np.arange(size, dtype=np.float64) - size // 2
    k = k.astype(np.float64)
    xx = (k * off[None, :] ** 2).sum()
    yy = (k * off[:, None] ** 2).sum()
    xy = (k * off[None, :] * off[:, None]).sum()
    return xx, xy, yy


@pytest.mark.parametrize("size,motion", [(25, 0.5), (32, 0.5), (24, 1.0), (7, 0.5)])
def test_kernels_are_normalised_nonnegative_and_centred(size, motion):
    # size 32: even, and wide enough that the truncated Gaussian tails do not move the centre
    k = _kernels(f"randomblur(size={size},motion={motion})", n=64, seed=3)
    assert k.shape == (64, size, size) and k.dtype == np.float32
    assert np.all(k >= 0)
    np.testing.assert_allclose(k.sum(axis=(1, 2)), 1.0, atol=1e-5)
    origin = size // 2
    for kernel in k:
        np.testing.assert_allclose(centre_of_mass(kernel), (origin, origin), atol=1e-3)
    if size >= 9:  # below 9 taps motion_kernel has no room for a path: a 0.5-px blob remains
        assert not _point_symmetric(k).all()  # motion kernels are among them


def test_without_motion_every_kernel_is_a_fitted_gaussian():
    size = 25
    k = _kernels("randomblur(motion=0)", seed=11)
    assert _point_symmetric(k, tol=1e-6).all()
    iso = _rotation_invariant(k)
    assert _within_binomial(iso.sum(), N, 0.5), iso.mean()

    sigmas = []
    for kernel in k[iso]:
        fit = opt.minimize_scalar(lambda s: ((gaussian_kernel(size, s) - kernel) ** 2).sum(),
                                  bounds=(0.3, 6.0), method="bounded",
                                  options={"xatol": 1e-7})
        np.testing.assert_allclose(kernel, gaussian_kernel(size, fit.x), atol=1e-6)
        sigmas.append(fit.x)
    sigmas = np.array(sigmas)
    assert sigmas.min() >= 0.7 - 1e-3 and sigmas.max() <= 4.0 + 1e-3
    assert sigmas.min() < 0.9 and sigmas.max() > 3.8  # the whole default range 0.7~4 is used

    axes, angles = [], []
    for kernel in k[~iso][:100]:
        xx, xy, yy = _moments(kernel)
        w, v = np.linalg.eigh(np.array([[xx, xy], [xy, yy]]))
        start = [math.sqrt(w[1]), math.sqrt(w[0]), math.atan2(v[1, 1], v[0, 1])]
        fit = opt.least_squares(lambda p: (gaussian_kernel(size, *p) - kernel).ravel(), start,
                                bounds=([0.1, 0.1, -10], [10, 10, 10]), xtol=1e-12, ftol=1e-12)
        np.testing.assert_allclose(kernel, gaussian_kernel(size, *fit.x), atol=2e-6)
        s1, s2, theta = fit.x
        axes += [s1, s2]
        # orientation of the major axis, in [0, pi)
        angles.append((theta if s1 >= s2 else theta + math.pi / 2) % math.pi)
    axes = np.array(axes)
    assert axes.min() >= 0.7 - 1e-2 and axes.max() <= 4.0 + 1e-2
    # theta ~ U[0, pi): major axes point every way. Bins of pi/4 centred on 0, pi/4, pi/2,
    # 3pi/4, so axis-aligned kernels (theta stuck at 0) would leave the diagonal bins empty.
    counts = np.histogram((np.array(angles) + math.pi / 8) % math.pi, bins=4,
                          range=(0, math.pi))[0]
    assert counts.min() >= 10, counts


def test_isotropic_widths_are_inside_the_sigma_range():
    k = _kernels("randomblur(sigma=1~2,motion=0)", seed=5)
    iso = _rotation_invariant(k)
    assert iso.sum() > 150
    # for sigma <= 2 on 25 taps, sampling and truncation change the second moment < 1e-4
    sigma = np.array([math.sqrt(_moments(kernel)[0]) for kernel in k[iso]])
    assert sigma.min() >= 1.0 - 1e-3 and sigma.max() <= 2.0 + 1e-3
    assert sigma.min() < 1.05 and sigma.max() > 1.95
    # an anisotropic kernel's axes come from the same range: the principal moments too
    for kernel in k[~iso]:
        xx, xy, yy = _moments(kernel)
        w = np.linalg.eigvalsh(np.array([[xx, xy], [xy, yy]]))
        assert 1.0 - 1e-3 <= math.sqrt(w[0]) and math.sqrt(w[1]) <= 2.0 + 1e-3


def test_motion_one_gives_only_motion_kernels():
    k = _kernels("randomblur(motion=1)", n=100, seed=2)
    assert not _point_symmetric(k, tol=1e-3).any()
    assert len({kernel.tobytes() for kernel in k}) == 100


def test_motion_fraction_and_kind_split():
    k = _kernels("randomblur(motion=0.25)", seed=7)
    symmetric = _point_symmetric(k)
    assert _within_binomial((~symmetric).sum(), N, 0.25), (~symmetric).mean()
    iso = _rotation_invariant(k)
    assert _within_binomial(iso.sum(), N, 0.375) and _within_binomial((symmetric & ~iso).sum(),
                                                                      N, 0.375)


def test_no_motion_kernels_are_made_when_motion_is_zero(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("motion kernels computed with motion=0")

    monkeypatch.setattr(tf, "numpy_function", refuse)
    k = _kernels("randomblur(motion=0)", n=8)
    assert k.shape == (8, 25, 25)
    with pytest.raises(AssertionError, match="motion kernels computed"):
        _kernels("randomblur(motion=0.25)", n=8)


def test_same_seed_same_kernels_and_one_kernel_per_image():
    spec = "randomblur(size=15,motion=0.5)"
    a = _kernels(spec, n=16, seed=42)
    b = parse_degradation(spec).sample_kernel(seed=42, batch=16)
    np.testing.assert_array_equal(a, b)
    c = _kernels(spec, n=16, seed=43)
    assert not np.array_equal(a, c)
    assert len({kernel.tobytes() for kernel in a}) == 16
    assert not any(np.array_equal(x, y) for x, y in zip(a, c))  # no image keeps its kernel
    deg = parse_degradation(spec)
    assert deg.is_random and parse_degradation("randomblur(sigma=2)").is_random
    np.testing.assert_array_equal(deg.sample_kernel(seed="img"), deg.sample_kernel(seed="img"))
    assert not np.array_equal(deg.sample_kernel(seed="img"), deg.sample_kernel(seed="img2"))


def test_labels_recreate_the_lr():
    deg = parse_degradation("randomblur(size=25,padding=circular)+direct")
    hr = np.random.default_rng(0).random((8, 32, 32, 3)).astype(np.float32)
    lr, labels = deg.degrade(hr, 2, seed=1)
    kernels = labels["kernel"]
    assert lr.shape == (8, 16, 16, 3) and kernels.shape == (8, 25, 25)
    symmetric = _point_symmetric(kernels)
    assert symmetric.any() and not symmetric.all()  # both Gaussians and motion kernels
    for i in range(8):
        for c in range(3):
            ref = ndi.convolve(hr[i, ..., c].astype(np.float64),
                               kernels[i].astype(np.float64), mode="wrap")[::2, ::2]
            np.testing.assert_allclose(lr[i, ..., c], ref, atol=1e-5)


@pytest.mark.parametrize("spec", [
    "randomblur",
    "randomblur(31)",
    "randomblur(size=24,sigma=0.5~2,motion=0,padding=circular)+direct",
    "randomblur(size=25,sigma=2,motion=1,length=5~15,padding=zero)+bicubic+noise(5)",
    "randomblur(9, 1~3, 0.5, 6, symmetric)+direct(offset=1)",
])
def test_spec_round_trip(spec):
    deg = parse_degradation(spec)
    again = parse_degradation(str(deg))
    assert again == deg and str(again) == str(deg)
    np.testing.assert_array_equal(deg.sample_kernel(seed=3, batch=4),
                                  again.sample_kernel(seed=3, batch=4))


def test_canonical_form_and_listing():
    assert str(parse_degradation("randomblur")) == (
        "randomblur(size=25,sigma=0.7~4.0,motion=0.25,padding=reflect)+bicubic")
    assert str(parse_degradation("randomblur(9,1~3,0.5,6,symmetric)")) == (
        "randomblur(size=9,sigma=1.0~3.0,motion=0.5,length=6.0,padding=symmetric)+bicubic")
    assert "randomblur" in op_names()
    assert "randomblur(size=25, sigma=0.7~4.0, motion=0.25, length, padding=reflect)" in \
        describe_ops()


@pytest.mark.parametrize("spec,message", [
    ("randomblur(motion=1.5)", "randomblur: motion must be <= 1.0, got 1.5"),
    ("randomblur(motion=-0.1)", "randomblur: motion must be >= 0.0, got -0.1"),
    ("randomblur(motion=0.1~0.3)", "randomblur: motion does not take a range"),
    ("randomblur(size=5)", "randomblur: size must be >= 7, got 5"),
    ("randomblur(size=7~9)", "randomblur: size does not take a range"),
    ("randomblur(sigma=0~2)", "randomblur: sigma must be > 0, got 0"),
    ("randomblur(length=-3)", "randomblur: length must be > 0"),
    ("randomblur(padding=wrap)", "randomblur: padding must be one of reflect, symmetric"),
    ("randomblur(sigmas=2)", "randomblur: unknown argument 'sigmas'"),
    ("randomblur+gaussian(sigma=1)", "only one blur op"),
])
def test_bad_arguments_give_one_line_errors(spec, message):
    with pytest.raises(DegradationError) as info:
        parse_degradation(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_works_in_tf_function_and_tf_data():
    deg = parse_degradation("randomblur(size=15,motion=0.5)+direct")
    hr = np.random.default_rng(1).random((6, 20, 20, 3)).astype(np.float32)
    graph = tf.function(lambda x, s: deg.degrade(x, 2, seed=s))
    lr, labels = graph(tf.constant(hr), tf.constant(9, tf.int64))
    ref_lr, ref_labels = deg.degrade(hr, 2, seed=9)
    np.testing.assert_array_equal(labels["kernel"].numpy(), ref_labels["kernel"])
    np.testing.assert_allclose(lr.numpy(), ref_lr, atol=1e-6)
    assert labels["kernel"].shape == (6, 15, 15)

    ds = tf.data.Dataset.from_tensor_slices((hr, tf.range(6, dtype=tf.int64)))
    ds = ds.map(lambda x, i: deg.degrade(x, 2, seed=i))
    got = [labels["kernel"] for _, labels in ds.as_numpy_iterator()]
    for i, kernel in enumerate(got):
        np.testing.assert_array_equal(kernel, deg.sample_kernel(seed=i))
    assert len({k.tobytes() for k in got}) == 6
