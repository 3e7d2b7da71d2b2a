"""ReDegNet (Li et al., "From Face to Natural Image: Learning Real Degradation for Blind Image
Super-Resolution", ECCV 2022): a degradation learned from real LQ/HQ pairs, as the official
code trains it (``csxmli2016/ReDegNet``: ``redeg/models/redeg_model.py``,
``redeg/data/redeg_degradation_dataset.py``, ``options/train_redeg.yml``).

DegNet reads the degradation of a pair as a vector Omega; SynNet re-synthesises the LQ image
from the HQ image and an Omega. Each step of ``train.py redegnet`` sees three pairs at the HQ
size: the real pair ``(lq, hq)`` of ``--pair-dir``; ``(syn_a, hq)``, the same HQ under a
random synthetic chain; ``(syn_b, hr)``, an HR patch of ``--train-dir`` under the *same* chain
(same draws, same noise). Then, in the official order:

1. DegNet and SynNet on ``w_pixel * L1 + w_perceptual * perceptual + w_style * Gram style``
   (each the mean over the three reconstructions), ``w_consistency * |Omega_a - Omega_b|``
   (one degradation, two contents), ``lambda / (|Omega_real - Omega_a| + eps)`` (one content,
   two degradations) and the hinge generator loss of the discriminator on the real pair's
   reconstruction, conditioned on ``Omega_real`` detached. With probability ``swap`` the two
   synthetic pairs are re-made with each other's Omega.
2. The discriminator on the hinge loss: the real LQ against that reconstruction, detached.

``train.py redegnet-sr`` then trains an SR network on HR patches that the frozen SynNet
degrades with Omegas DegNet reads from a folder of pairs, brought to LR size by bicubic and
rounded to 8 bits.
"""
import os
import re

import numpy as np
import tensorflow as tf

from visionfw.params import Hyperparameter
from visionfw.recipes.base import Recipe, register_recipe
from visionfw.train import TrainError

# The default synthetic chain: the official AddBlur/AddDownSample/AddNoise/AddJPEG branch of
# the data set (probabilities 0.8, 0.8, 0.9, 0.9; Gaussian sigma 0.3-1.3, down by 2-6, noise
# 3-25, quality 30-80), here in random order (``chain_order``).
DEFAULT_CHAIN = ("0.8*gaussian(sigma=0.3~1.3,size=21)+0.8*resize(2~6)+0.9*noise(3~25)"
                 "+0.9*jpeg(30~80)")
# The official PerceptualLoss layer weights of SynNet (conv1_2 .. conv5_4, before ReLU).
OFFICIAL_LAYER_WEIGHTS = (2.0, 1.2, 0.6, 0.2, 0.1)
FEATURE_SEED = 2022          # the random feature network: the same weights in every run
FEATURE_WIDTHS = (16, 32, 64, 64, 64)


# ---------------------------------------------------------------- the synthetic chain

def _split_top(text):
    """``text`` split at ``+`` outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "()":
            depth += 1 if ch == "(" else -1
        elif ch == "+" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


_STEP = re.compile(r"\s*(?:(\d*\.?\d+)\s*\*)?\s*(.+?)\s*$", re.S)
_RESIZE = re.compile(r"resize\(\s*(\d*\.?\d+)\s*(?:~\s*(\d*\.?\d+)\s*)?\)")
_SCALED = ("bicubic", "direct")


class RandomChain:
    """A random degradation chain that two images undergo alike.

    Written as the library's ops joined by ``+``, each optionally prefixed by the probability
    that it is applied (``0.8*gaussian(sigma=0.3~1.3)``; 1 when left out), plus
    ``resize(LOW~HIGH)``: MATLAB bicubic down-sampling by a factor drawn in ``[LOW, HIGH]``
    (any real factor, the output ``floor(side / factor)`` pixels). Ranges are drawn once per
    call from its seed. ``order='random'`` applies the steps in a random order drawn per
    call. The result is brought back to the input's size by bicubic and clipped to [0, 1].

    Args:
        text: the chain.
        order: ``'random'`` or ``'fixed'`` (as written).
    """

    def __init__(self, text, order="random"):
        from visionfw.degradation import DegradationError, parse_degradation

        if order not in ("random", "fixed"):
            raise TrainError(f"--recipe-param chain_order must be random or fixed, got {order!r}")
        self.text, self.order, self.steps = text, order, []
        for part in _split_top(text):
            m = _STEP.fullmatch(part)
            if not part.strip() or not m:
                raise TrainError(f"--recipe-param chain {text!r}: empty step")
            p, body = float(m.group(1)) if m.group(1) else 1.0, m.group(2)
            if not 0.0 <= p <= 1.0:
                raise TrainError(f"--recipe-param chain: probability {p} of {body!r} is not in "
                                 "[0, 1]")
            size = _RESIZE.fullmatch(body)
            if size:
                low = float(size.group(1))
                high = float(size.group(2)) if size.group(2) else low
                if not 1.0 <= low <= high:
                    raise TrainError(f"--recipe-param chain: {body}: factors must be >= 1, low "
                                     "first")
                self.steps.append((p, "resize", (low, high)))
                continue
            if body.split("(")[0].strip() in _SCALED:
                raise TrainError(f"--recipe-param chain: {body!r} down-samples by the run's "
                                 "scale; write resize(LOW~HIGH) for a random factor")
            try:
                op = parse_degradation(body).ops[0]
            except DegradationError as exc:
                raise TrainError(f"--recipe-param chain: {exc}") from None
            self.steps.append((p, "op", op))

    def _step(self, index, images, seed):
        """Step ``index`` (gated by its probability) on each of ``images`` alike."""
        p, kind, what = self.steps[index]
        seed = tf.random.experimental.stateless_fold_in(seed, tf.constant(index, tf.int64))
        gate = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(
            seed, tf.constant(-1, tf.int64)))

        def apply():
            if kind == "resize":
                u = tf.random.stateless_uniform([], seed, dtype=tf.float64)
                f = what[0] + (what[1] - what[0]) * u
                return [_resize_by(x, f) for x in images]
            # a batch of one per image: ranged values drawn alike for each, the same noise
            return [tf.cast(what.apply(x, 1, seed, {}), tf.float32) for x in images]

        out = tf.cond(gate < p, apply, lambda: list(images))
        return [tf.ensure_shape(x, [1, None, None, 3]) for x in out]

    def pair(self, a, b, seed):
        """The chain on two ``(H, W, 3)`` images with one draw: ``(a', b')`` at ``a``'s size."""
        size = tf.shape(a)[:2]
        images = [a[None], b[None]]
        n = len(self.steps)
        if self.order == "random" and n > 1:
            perm = tf.argsort(tf.random.stateless_uniform([n], tf.random.experimental.
                                                          stateless_fold_in(seed, 999)))

            def body(position, a, b):       # one trace of each step, whatever the order
                branches = [lambda i=i: tuple(self._step(i, [a, b], seed)) for i in range(n)]
                return (position + 1, *tf.switch_case(tf.gather(perm, position), branches))

            free = tf.TensorShape([1, None, None, 3])
            _, *images = tf.while_loop(lambda position, a, b: position < n, body,
                                       (tf.constant(0), *images),
                                       shape_invariants=(tf.TensorShape([]), free, free))
        else:
            for i in range(n):
                images = self._step(i, images, seed)
        return tuple(tf.clip_by_value(_to_size(x, size)[0], 0.0, 1.0) for x in images)

    def __call__(self, a, b, seeds):
        """The chain on two batches ``(B, H, W, 3)``, item ``i`` of both with ``seeds[i]``."""
        spec = tf.TensorSpec(a.shape[1:], tf.float32)
        return tf.map_fn(lambda t: self.pair(t[0], t[1], t[2]), (a, b, seeds),
                         fn_output_signature=(spec, spec))


def _resize_by(x, factor):
    from visionfw.resize import imresize

    shape = tf.cast(tf.shape(x)[1:3], tf.float64)
    out = tf.maximum(tf.cast(tf.floor(shape / factor), tf.int32), 1)
    return imresize(x, output_shape=(out[0], out[1]))


def _to_size(x, size):
    """``x`` resized by MATLAB bicubic to ``size`` (unchanged when it already is)."""
    from visionfw.resize import imresize

    same = tf.reduce_all(tf.equal(tf.shape(x)[1:3], size))
    return tf.cond(same, lambda: x, lambda: imresize(x, output_shape=(size[0], size[1])))


def up_to(lq, size):
    """A batch of LQ patches brought to ``size`` by bicubic (MATLAB's), clipped to [0, 1]."""
    from visionfw.resize import imresize

    if lq.shape[1] is not None and lq.shape[1] == size[0] and lq.shape[2] == size[1]:
        return lq
    return tf.clip_by_value(imresize(lq, output_shape=size), 0.0, 1.0)


# ---------------------------------------------------------------- the feature network

def random_features(widths=FEATURE_WIDTHS, seed=FEATURE_SEED):
    """The default feature network: a small VGG-like stack of 3x3 convolutions with fixed,
    seeded He-normal weights (the same in every run), frozen. Stage ``i`` is two convolutions
    of ``widths[i]`` filters; its output is taken before the second ReLU (as the official
    ``conv*_2``/``conv*_4`` features), then ReLU and 2x2 average pooling lead to the next.
    Takes RGB in [0, 1]; one output per stage."""
    import keras

    x = inp = keras.Input((None, None, 3), name="image")
    outs, k = [], 0
    for i, width in enumerate(widths):
        if i:
            x = keras.layers.AveragePooling2D(2, name=f"pool{i}")(x)
        for j in (1, 2):
            x = keras.layers.Conv2D(width, 3, padding="same", name=f"conv{i + 1}_{j}",
                                    kernel_initializer=keras.initializers.HeNormal(seed + k),
                                    bias_initializer="zeros")(x)
            k += 1
            if j == 2:
                outs.append(x)
            x = keras.layers.ReLU(name=f"relu{i + 1}_{j}")(x)
    net = keras.Model(inp, outs, name="redeg_features")
    net.trainable = False
    return net


def load_features(value):
    """The feature network of ``--recipe-param features``: ``random`` (:func:`random_features`),
    a Keras model file (``.keras``) or a checkpoint of a registered dictionary
    (``.weights.h5``). Its outputs are the features; it takes RGB in [0, 1]."""
    if value == "random":
        return random_features()
    if value.endswith(".keras"):
        import keras

        try:
            net = keras.saving.load_model(value, compile=False, safe_mode=True)
        except Exception as exc:       # Keras raises many kinds for a file it cannot read
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainError(f"--recipe-param features {value}: cannot load it ({first})") \
                from None
    else:
        from visionfw.checkpoint import load_model
        from visionfw.errors import CheckpointError

        try:
            net = load_model(value, compile=False)
        except CheckpointError as exc:
            raise TrainError(f"--recipe-param features {exc}") from None
    net.trainable = False
    return net


def layer_weights(text, count):
    """The weights of the feature layers: ``text`` a comma list of ``count`` numbers, or empty
    for the official five (one each for another count)."""
    if not text:
        return OFFICIAL_LAYER_WEIGHTS if count == 5 else (1.0,) * count
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise TrainError(f"--recipe-param feature_weights {text!r}: a comma list of numbers") \
            from None
    if len(values) != count:
        raise TrainError(f"--recipe-param feature_weights has {len(values)} weights for a "
                         f"feature network of {count} outputs")
    return values


def features_of(net, images):
    out = net(images, training=False)
    return [tf.cast(f, tf.float32) for f in (out if isinstance(out, (list, tuple)) else [out])]


# ---------------------------------------------------------------- runs

def pair_stems(folder, flag):
    """Check a folder of pairs (``LQ/`` and ``HQ/``, same names); ``(lq_dir, hq_dir)``."""
    from visionfw.imageio import list_images
    from visionfw.train.run import pair_folders

    lq, hq = pair_folders(folder)
    a = {os.path.splitext(p.name)[0] for p in list_images(lq)}
    b = {os.path.splitext(p.name)[0] for p in list_images(hq)}
    if not a:
        raise TrainError(f"{flag} {folder}: no images in {lq}")
    if a != b:
        odd = sorted(a ^ b)
        raise TrainError(f"{flag} {folder}: LQ and HQ images must have the same names; "
                         f"{', '.join(odd[:3])}{' ...' if len(odd) > 3 else ''} "
                         "is in one folder only")
    return lq, hq


def _redeg_files(path, which=None):
    """``{'degnet': file, 'synnet': file}`` of a run folder or of one of its checkpoints."""
    from visionfw.errors import CheckpointError

    if os.path.isfile(path):
        folder, name = os.path.split(path)
        m = re.fullmatch(r"(.+?)(\.degnet|\.synnet)?\.weights\.h5", name)
        if not m:
            raise CheckpointError(f"{path}: not a .weights.h5 checkpoint of a redegnet run")
        stem = m.group(1)
        pairs = [{"degnet": os.path.join(folder, f"{stem}.degnet.weights.h5"),
                  "synnet": os.path.join(folder, f"{stem}{tail}.weights.h5")}
                 for tail in ("", ".synnet")]
        for files in pairs:
            if all(os.path.isfile(p) for p in files.values()):
                return files
        raise CheckpointError(f"{path}: no {stem}.degnet.weights.h5 beside it (DegNet and "
                              "SynNet are saved side by side by train.py redegnet)")
    if not os.path.isdir(path):
        raise TrainError(f"{path}: no such run folder or checkpoint")
    from visionfw.recipes.base import saved_networks

    return saved_networks(path, ("degnet", "synnet"), "holds_redeg",
                          "train.py redegnet or redegnet-sr", which)


def load_redeg(path, which=None):
    """``(degnet, synnet)`` of a ``train.py redegnet`` (or ``redegnet-sr``) run folder -- its
    last weights, its state when stopped early, or best if it has not finished (``which``:
    ``'last'`` or ``'best'``) -- or of one of its checkpoints (``RUN/best.weights.h5`` or
    ``RUN/best.degnet.weights.h5``).
    A missing folder, a folder of another recipe or a checkpoint of other networks is a
    one-line :class:`~visionfw.train.TrainError` or
    :class:`~visionfw.errors.CheckpointError`."""
    from visionfw.checkpoint import load_model, read_spec
    from visionfw.errors import CheckpointError

    files = _redeg_files(str(path), which)
    nets = {}
    for role, file in files.items():
        model = read_spec(file).get("model")
        if model != f"redeg-{role}":
            raise CheckpointError(f"{file}: holds {model or 'a plain dictionary'}, not "
                                  f"redeg-{role} (the {role} of a redegnet run)")
        nets[role] = load_model(file, compile=False)
    return nets["degnet"], nets["synnet"]


def torch_adam(schedule):
    """Adam as the official code's PyTorch defaults: betas 0.9 and 0.999, epsilon 1e-8."""
    from visionfw.recipes.pdm import torch_adam as adam

    return adam(schedule)


def _build(name, **hp):
    from visionfw import models
    from visionfw.graph.builder import attach_spec, build

    d = models.model_dict(name, **hp)
    net = build(d)
    attach_spec(net, d, name, hp)
    return net


def _check_synnet(recipe, config, model_dict, model="redeg-synnet"):
    from visionfw import models

    if not (isinstance(config.model, str) and models.has_model(config.model)
            and models.get_model_def(config.model).name == model):
        raise TrainError(f"recipe {recipe} trains {model} (with DegNet and the "
                         f"discriminator); {config.model} is not it")


# ---------------------------------------------------------------- train.py redegnet

WEIGHTS = (
    Hyperparameter("w_pixel", float, 10.0, "weight of the L1 reconstruction (official: "
                   "pixel_syn_opt loss_weight 10 x syn_pixel_lambda 1, on the mean of three)"),
    Hyperparameter("w_perceptual", float, 0.2, "weight of the perceptual loss (official "
                   "perceptual_weight 0.2)"),
    Hyperparameter("w_style", float, 160.0 / 3.0, "weight of the Gram style loss (official "
                   "style_weight 160, divided by 3 once more where it is added)"),
    Hyperparameter("w_consistency", float, 100.0, "weight of |Omega_a - Omega_b| (official "
                   "syn_samedeg_lambda 10 x the L1 weight 10)"),
    Hyperparameter("w_disentangle", float, 0.4, "lambda of lambda / (|Omega_real - Omega_a| + "
                   "eps) (official contrastive_lambda 4 over the L1 of weight 10)"),
    Hyperparameter("eps", float, 1e-8, "eps of the disentanglement term (official 1e-7 "
                   "added to 10 x L1)"),
    Hyperparameter("w_adversarial", float, 0.01, "weight of the hinge generator loss "
                   "(official gan_syn_opt loss_weight 1e-2)"),
    Hyperparameter("w_contrast", float, 0.0, "weight of a batch InfoNCE on the synthetic "
                   "Omegas (ours, not official; 0: off): each syn_a Omega nearest its syn_b "
                   "twin among the batch's other chains"),
)


@register_recipe("redegnet")
class ReDegNetRecipe(Recipe):
    """ReDegNet's degradation: SynNet (the model, ``redeg-synnet``, sized by ``--param``),
    DegNet (``redeg-degnet``) and the projection discriminator (``redeg-disc``), from the
    real pairs of ``--pair-dir`` (``--scale``: their HQ/LQ size ratio, 1 for pairs of one
    size) and the HR patches of ``--train-dir``, which the random ``chain`` degrades."""

    params = WEIGHTS + (
        Hyperparameter("swap", float, 0.8, "probability of re-making the synthetic pairs with "
                       "each other's Omega (official: random() > 0.2)"),
        Hyperparameter("chain", str, DEFAULT_CHAIN, "the synthetic degradation: ops joined by "
                       "+, each P*op (applied with probability P); resize(LOW~HIGH) down-samples "
                       "by a random factor"),
        Hyperparameter("chain_order", str, "random", "random: the chain's steps in a random "
                       "order per pair; fixed: as written"),
        Hyperparameter("features", str, "random", "the feature network of the perceptual and "
                       "style losses: random (a fixed, seeded small conv net), a .keras model "
                       "file or a .weights.h5 checkpoint; RGB [0, 1] in, features out"),
        Hyperparameter("feature_weights", str, "", "comma list, one weight per feature output "
                       "(empty: the official 2,1.2,0.6,0.2,0.1 for five outputs, else 1 each)"),
        Hyperparameter("temperature", float, 0.1, "temperature of the w_contrast InfoNCE"),
        Hyperparameter("deg_nf", int, 64, "redeg-degnet: width"),
        Hyperparameter("d_nf", int, 64, "redeg-disc: width"),
    )
    model = "redeg-synnet"
    main = "synnet"
    ema = ("degnet", "synnet")
    saved = ("degnet", "discriminator")
    needs = ("lq", "hq")
    test_weights = {"synnet": "best.weights.h5", "degnet": "best.degnet.weights.h5"}
    best_by = None
    learns_degradation = True
    holds_redeg = True
    val_metrics = ("synthesis_psnr",)
    val_with_hr = True

    @classmethod
    def check_run(cls, config):
        from visionfw import models

        o = cls.resolve_options(config.recipe_params)
        if not config.pair_dirs:
            raise TrainError(f"recipe {cls.name} learns the degradation of real LQ/HQ pairs: "
                             "give them with --pair-dir FOLDER (LQ/ and HQ/, same names)")
        for folder in config.pair_dirs:
            pair_stems(folder, "--pair-dir")
        if config.sampler != "uniform":
            raise TrainError(f"--sampler {config.sampler}: recipe {cls.name} draws patches "
                             "uniformly")
        for p in WEIGHTS:
            if not o[p.name] >= 0:
                raise TrainError(f"--recipe-param {p.name} must be >= 0, got {o[p.name]}")
        if not o["temperature"] > 0:
            raise TrainError(f"--recipe-param temperature must be > 0, got {o['temperature']}")
        if not o["eps"] > 0:
            raise TrainError(f"--recipe-param eps must be > 0, got {o['eps']}")
        if not 0 <= o["swap"] <= 1:
            raise TrainError(f"--recipe-param swap is a probability, got {o['swap']}")
        for name in ("deg_nf", "d_nf"):
            if o[name] < 1:
                raise TrainError(f"--recipe-param {name} must be at least 1, got {o[name]}")
        RandomChain(o["chain"], o["chain_order"])
        check_features(o["features"])
        if isinstance(config.model, str) and models.has_model(config.model):
            _, _, hp = models.resolve_model(config.model, **config.hparams)
            side = 2 ** int(hp.get("levels", 0))
            if config.patch_size % side:
                raise TrainError(f"--patch-size {config.patch_size} must be a multiple of "
                                 f"{side} (2 ** SynNet's levels)")

    @classmethod
    def check_model(cls, config, model_dict):
        _check_synnet(cls.name, config, model_dict)

    def build(self):
        from visionfw.graph.builder import attach_spec, build
        from visionfw.runtime import without_remapping

        without_remapping()
        o, size = self.options, int(self.config.patch_size)
        synnet = build(self.model_dict)
        attach_spec(synnet, self.model_dict, self.model_name, self.hparams)
        omega = int(synnet.inputs[1].shape[-1])
        degnet = _build("redeg-degnet", omega=omega, nf=o["deg_nf"], size=size)
        disc = _build("redeg-disc", omega=omega, nf=o["d_nf"], size=size)
        self.networks = {"synnet": synnet, "degnet": degnet, "discriminator": disc}
        # DegNet and SynNet step on one loss; one Adam over both is the official two Adams of
        # the same settings (Adam is per weight)
        self.optimizers = {"redeg": torch_adam(self.schedule),
                           "discriminator": torch_adam(self.schedule)}
        self.optimizer_networks = {"redeg": ("degnet", "synnet")}
        self.chain = RandomChain(o["chain"], o["chain_order"])
        self.features = load_features(o["features"])
        self.layer_weights = layer_weights(o["feature_weights"],
                                           len(self.features.outputs))

    # ---- the step

    def synthetic(self, hq, hr, opt):
        """The pairs of one chain: ``(syn_a, syn_b)``, of ``hq`` and of ``hr``."""
        seeds = opt.rng.uniform_full_int([tf.shape(hq)[0], 2], dtype=tf.int64)
        a, b = self.chain(hq, hr, seeds)
        return tf.stop_gradient(a), tf.stop_gradient(b)

    def reconstruction_losses(self, fakes, targets):
        """``(pixel, perceptual, style)``: each the mean over the pairs."""
        from visionfw import losses

        pixel = tf.add_n([losses.l1(f, t) for f, t in zip(fakes, targets)]) / len(fakes)
        n = len(fakes)
        feats = features_of(self.features, tf.concat(list(fakes) + list(targets), axis=0))
        b = tf.shape(fakes[0])[0]
        per, sty = [], []
        for i in range(n):
            est = [f[i * b:(i + 1) * b] for f in feats]
            tgt = [tf.stop_gradient(f[(n + i) * b:(n + i + 1) * b]) for f in feats]
            per.append(losses.perceptual(est, tgt, self.layer_weights))
            sty.append(losses.style(est, tgt, self.layer_weights))
        return pixel, tf.add_n(per) / n, tf.add_n(sty) / n

    def train_step(self, batch, opt):
        from visionfw import losses

        o = self.options
        degnet, synnet, d = (self.networks[n] for n in ("degnet", "synnet", "discriminator"))
        hq, hr = batch["hq"], batch["hr"]
        real = up_to(batch["lq"], hq.shape[1:3])
        syn_a, syn_b = self.synthetic(hq, hr, opt)
        swap = opt.rng.uniform([]) < o["swap"]

        def omega(lq, content):
            return tf.cast(degnet([lq, content], training=True), tf.float32)

        def synth(content, w):
            return tf.cast(synnet([content, w], training=True), tf.float32)

        def generator_loss():
            w_real, w_a, w_b = omega(real, hq), omega(syn_a, hq), omega(syn_b, hr)
            fake_real = synth(hq, w_real)
            fake_a = synth(hq, tf.where(swap, w_b, w_a))
            fake_b = synth(hr, tf.where(swap, w_a, w_b))
            pixel, perceptual, style = self.reconstruction_losses(
                (fake_b, fake_a, fake_real), (syn_b, syn_a, real))
            consistency = losses.degradation_consistency(w_b, w_a)
            disentangle = losses.disentanglement(w_real, w_a, 1.0, o["eps"])
            contrast = losses.batch_contrast(w_a, w_b, o["temperature"])
            adversarial = losses.hinge_generator(
                tf.cast(d([fake_real, hq, tf.stop_gradient(w_real)], training=True), tf.float32))
            total = (o["w_pixel"] * pixel + o["w_perceptual"] * perceptual
                     + o["w_style"] * style + o["w_consistency"] * consistency
                     + o["w_disentangle"] * disentangle + o["w_adversarial"] * adversarial
                     + o["w_contrast"] * contrast)
            parts = {"pixel": pixel, "perceptual": perceptual, "style": style,
                     "consistency": consistency, "disentangle": disentangle,
                     "adversarial": adversarial, "contrast": contrast}
            return total, (fake_real, w_real, parts)

        loss, (fake, w_real, out) = opt.minimize("redeg", generator_loss)
        fake, w_real = tf.stop_gradient(fake), tf.stop_gradient(w_real)

        def discriminator_loss():
            return losses.hinge_discriminator(
                tf.cast(d([real, hq, w_real], training=True), tf.float32),
                tf.cast(d([fake, hq, w_real], training=True), tf.float32))

        out["discriminator_loss"] = opt.minimize("discriminator", discriminator_loss)
        out["loss"] = out["redeg_loss"] = loss
        return out

    def predict(self, inputs):
        """Validation: the prediction is the LR image up-sampled (its PSNR is bicubic's, as
        PDM's), and ``synthesis_psnr`` measures the degradation: each validation image's own
        pair (its LR under ``--degradation``, its HR) gives Omega, and SynNet's LQ of the HR
        under it, brought down to the LR size, is scored against that LR."""
        from visionfw.recipes.kenet import bicubic_up

        lr, scale = inputs["lr"], int(self.config.scale)
        return bicubic_up(lr, scale), {"synthesis_psnr": self.synthesis_psnr(lr, inputs["hr"])}

    def synthesis_psnr(self, lr, hr):
        """``(1,)`` PSNR (dB) of SynNet's LQ of ``hr`` against ``lr`` under DegNet's Omega of
        the pair read from its centre square of DegNet's size (an image smaller than that is
        repeated up to it); SynNet's input is mirrored to its size multiple and cropped back,
        its output brought down by MATLAB bicubic; both rounded to 8 bits, ``scale`` pixels
        cropped on every side (fewer on a very small image). Dynamic shapes: validation
        images of every size go through one trace."""
        from visionfw.evaluate.redeg import synnet_multiple
        from visionfw.resize import imresize

        degnet, synnet = self.networks["degnet"], self.networks["synnet"]
        scale, size = int(self.config.scale), int(degnet.inputs[0].shape[1])
        h, w = tf.shape(hr)[1], tf.shape(hr)[2]
        up = tf.clip_by_value(imresize(lr, output_shape=(h, w)), 0.0, 1.0)
        pair = tf.concat([up, hr], axis=-1)
        pair = tf.tile(pair, [1, -(-size // h), -(-size // w), 1])
        top = (tf.shape(pair)[1] - size) // 2
        left = (tf.shape(pair)[2] - size) // 2
        pair = pair[:, top:top + size, left:left + size]
        omega = tf.cast(degnet([pair[..., :3], pair[..., 3:]], training=False), tf.float32)
        multiple = synnet_multiple(synnet)
        padded = tf.pad(hr, [[0, 0], [0, -h % multiple], [0, -w % multiple], [0, 0]],
                        mode="SYMMETRIC")
        fake = tf.cast(synnet([padded, omega], training=False), tf.float32)[:, :h, :w]
        lh, lw = tf.shape(lr)[1], tf.shape(lr)[2]
        fake = imresize(tf.clip_by_value(fake, 0.0, 1.0), output_shape=(lh, lw))
        border = tf.minimum(scale, tf.minimum(lh - 1, lw - 1) // 2)

        def eight_bits(x):
            x = tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0)
            return x[:, border:lh - border, border:lw - border]

        mse = tf.reduce_mean(tf.square(eight_bits(fake) - eight_bits(lr)), axis=[1, 2, 3])
        return 10.0 * tf.math.log(255.0 ** 2 / tf.maximum(mse, 1e-10)) / tf.math.log(10.0)


def check_features(value):
    if value != "random" and not os.path.isfile(value):
        raise TrainError(f"--recipe-param features {value}: no such file (random, a .keras "
                         "model file or a .weights.h5 checkpoint)")
    if value != "random" and not value.endswith((".keras", ".weights.h5")):
        raise TrainError(f"--recipe-param features {value}: expected a .keras model file or a "
                         ".weights.h5 checkpoint")


# ---------------------------------------------------------------- train.py redegnet-sr

@register_recipe("redegnet-sr")
class ReDegNetSRRecipe(Recipe):
    """An SR network (the trained model, any of the LR image alone; SRResNet by default) on
    LR that a trained ReDegNet makes from the HR patches of ``--train-dir``: SynNet (frozen)
    with an Omega DegNet read from a random pair of ``pairs`` per patch, optional Gaussian
    noise, MATLAB bicubic down by ``--scale``, 8-bit rounding."""

    params = (
        Hyperparameter("redeg", str, "", "the train.py redegnet run folder (or one of its "
                       "checkpoints) whose DegNet and SynNet make the LR"),
        Hyperparameter("pairs", str, "", "folder of LQ/HQ pairs whose degradations are "
                       "synthesised (LQ/ and HQ/, same names); empty: the redeg run's "
                       "--pair-dir"),
        Hyperparameter("tiles", int, 8, "DegNet reads up to this many tiles of its size from "
                       "each pair, each tile one Omega of the bank"),
        Hyperparameter("noise_p", float, 0.4, "probability of Gaussian noise on the synthesised "
                       "image (official 0.4)"),
        Hyperparameter("noise_max", float, 25.5, "its sigma is drawn in [0, noise_max], 0-255 "
                       "scale (official 0~0.2 on [-1, 1])"),
    )
    model = "srresnet"
    main = "sr"
    ema = ("sr",)
    saved = ("degnet", "synnet")
    learns_degradation = True
    holds_redeg = True

    @classmethod
    def check_run(cls, config):
        from visionfw.checkpoint import read_spec

        o = cls.resolve_options(config.recipe_params)
        if not o["redeg"]:
            raise TrainError(f"recipe {cls.name} synthesises LR with a trained ReDegNet: give "
                             "its run with --redeg RUN (a train.py redegnet run folder)")
        files = _redeg_files(o["redeg"])
        pairs = pairs_folder(o)
        if not pairs:
            raise TrainError(f"recipe {cls.name}: give the pairs whose degradations it "
                             "synthesises with --pairs FOLDER")
        if not os.path.isdir(pairs):
            raise TrainError(f"--pairs {pairs}: no such folder")
        pair_stems(pairs, "--pairs")
        if o["tiles"] < 1:
            raise TrainError(f"--recipe-param tiles must be at least 1, got {o['tiles']}")
        if not 0 <= o["noise_p"] <= 1 or o["noise_max"] < 0:
            raise TrainError("--recipe-param noise_p must be in [0, 1] and noise_max >= 0")
        levels = int((read_spec(files["synnet"]).get("hparams") or {}).get("levels", 0))
        if config.patch_size % 2 ** levels:
            raise TrainError(f"--patch-size {config.patch_size} must be a multiple of "
                             f"{2 ** levels} (2 ** the SynNet's levels)")
        if config.sampler != "uniform":
            raise TrainError(f"--sampler {config.sampler}: recipe {cls.name} draws patches "
                             "uniformly")

    @classmethod
    def check_model(cls, config, model_dict):
        from visionfw.recipes.pdm import PDMSRRecipe

        try:
            PDMSRRecipe.check_model(config, model_dict)
        except TrainError as exc:
            raise TrainError(str(exc).replace("pdm-sr", cls.name)) from None

    def build(self):
        o = self.options
        sr = self.view_model(self.make_model())
        degnet, synnet = load_redeg(o["redeg"])
        degnet.trainable = synnet.trainable = False
        self.networks = {"sr": sr, "degnet": degnet, "synnet": synnet}
        self.optimizers = {"sr": torch_adam(self.schedule)}
        self.bank = omega_bank(degnet, pairs_folder(o), o["tiles"])

    def degrade(self, hr, opt):
        """The LR of an HR batch, rounded to 8 bits."""
        from visionfw.degradation import quantize
        from visionfw.resize import imresize

        o, b = self.options, tf.shape(hr)[0]
        pick = opt.rng.uniform([b], minval=0, maxval=int(self.bank.shape[0]), dtype=tf.int64)
        omega = tf.gather(self.bank, pick)
        lq = tf.cast(self.networks["synnet"]([hr, omega], training=False), tf.float32)
        noisy = tf.cast(opt.rng.uniform([b, 1, 1, 1]) < o["noise_p"], tf.float32)
        sigma = opt.rng.uniform([b, 1, 1, 1], 0.0, o["noise_max"] / 255.0)
        lq = tf.clip_by_value(lq + noisy * sigma * opt.rng.normal(tf.shape(lq)), 0.0, 1.0)
        lr = imresize(lq, scale=1.0 / int(self.config.scale))
        return tf.stop_gradient(quantize(lr))

    def train_step(self, batch, opt):
        from visionfw.recipes.sr import pixel_loss

        hr, net = batch["hr"], self.networks["sr"]
        lr = self.degrade(hr, opt)
        fed = self.view.input(lr, tf.shape(hr)[1:3])
        target = self.view.target(hr)

        def sr_loss():
            return pixel_loss(self.config.loss, tf.cast(net(fed, training=True), tf.float32),
                              target)

        loss = opt.minimize("sr", sr_loss)
        return {"loss": loss, "sr_loss": loss}

    def predict(self, inputs):
        from visionfw.color import from_model_space

        lr, net = inputs["lr"], self.networks["sr"]
        hr_shape = tf.shape(lr)[1:3] * int(self.config.scale)
        return from_model_space(tf.cast(net(self.view.input(lr, hr_shape), training=False),
                                        tf.float32), self.view.color)


def pairs_folder(options):
    """The pairs of a redegnet-sr run: ``--pairs``, else the redeg run's first --pair-dir."""
    if options["pairs"]:
        return options["pairs"]
    run = options["redeg"]
    folder = run if os.path.isdir(run) else os.path.dirname(run)
    from visionfw.train.config import read_settings

    saved = read_settings(folder) or {}
    dirs = saved.get("settings", {}).get("pair_dirs") or []
    return dirs[0] if dirs else ""


def omega_bank(degnet, folder, tiles):
    """``(n, omega)`` float32: DegNet's Omega of up to ``tiles`` tiles of its size from every
    pair of ``folder`` (the LQ brought to the HQ size by bicubic when it is smaller; tiles on a
    regular grid, left to right, top to bottom)."""
    from visionfw.imageio import list_images, read_image
    from visionfw.resize import imresize

    lq_dir, hq_dir = pair_stems(folder, "--pairs")
    size = int(degnet.inputs[0].shape[1])
    hq_files = {os.path.splitext(p.name)[0]: p for p in list_images(hq_dir)}
    lqs, hqs = [], []
    for path in list_images(lq_dir):
        lq = read_image(path).astype(np.float32) / 255.0
        hq = read_image(hq_files[os.path.splitext(path.name)[0]]).astype(np.float32) / 255.0
        if lq.shape != hq.shape:
            lq = np.clip(np.asarray(imresize(lq, output_shape=hq.shape[:2])), 0.0, 1.0)
        h, w = hq.shape[:2]
        spots = [(t, l) for t in range(0, h - size + 1, size)
                 for l in range(0, w - size + 1, size)][:tiles]
        for t, l in spots:
            lqs.append(lq[t:t + size, l:l + size])
            hqs.append(hq[t:t + size, l:l + size])
    if not lqs:
        raise TrainError(f"--pairs {folder}: no HQ image is at least {size}x{size}, the size "
                         "DegNet reads")
    out = [np.asarray(degnet([np.stack(lqs[i:i + 16]), np.stack(hqs[i:i + 16])],
                             training=False), np.float32) for i in range(0, len(lqs), 16)]
    return tf.constant(np.concatenate(out))
