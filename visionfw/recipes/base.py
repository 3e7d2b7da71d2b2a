"""What a recipe is, and the services the trainer lends it for one step.

A recipe owns its networks, its optimisers and its step. The trainer never learns how many
networks there are: it calls ``recipe.train_step(batch, opt)`` once per batch and ``opt``
(a :class:`StepServices`) does the rest on request::

    @register_recipe("gan-sketch")
    class Sketch(Recipe):
        period = 2                                  # the schedule repeats every 2 steps
        ema = ("generator",)                        # no EMA of the discriminator
        main = "generator"                          # saved and scored by validation

        def build(self):
            self.networks = {"generator": ..., "discriminator": ...}
            self.optimizers = {"generator": self.adam(), "discriminator": self.adam()}

        def train_step(self, batch, opt):
            g = lambda: ...                         # a scalar loss, computed in here
            loss = opt.minimize("generator", g)
            if opt.every(2):                        # every second step
                opt.minimize("discriminator", lambda: ...)
            return {"loss": loss}

Each :meth:`StepServices.minimize` call is one update: gradient tape, replica scaling,
all-reduce, clipping, the NaN check and the optimiser's apply. ``opt.every(n)`` is a Python
bool (the trainer traces one step function per phase of ``period``), so a schedule costs no
conditional in the graph. ``opt.step`` is the step counter, ``opt.rng`` the checkpointed
random generator, ``opt.learning_rate(name)`` an optimiser's current rate.
"""
import keras
import tensorflow as tf

from visionfw.params import Hyperparameter, resolve_params  # noqa: F401  (for recipes)
from visionfw.registry import Registry
from visionfw.train import TrainError

def _load_recipes():
    from visionfw import plugins

    plugins.load_recipes()


RECIPES = Registry("recipe", error=TrainError, fold_case=True)
RECIPES.add_loader(_load_recipes)
register_recipe = RECIPES.class_decorator   # @register_recipe("name"): register a Recipe
get_recipe = RECIPES.get                    # an unknown name is a one-line TrainError
recipe_names = RECIPES.names


class Recipe:
    """Base class of the training recipes.

    Class attributes a recipe may set:

    - ``params``: a tuple of :class:`~visionfw.params.Hyperparameter`, the recipe's typed
      parameters (``--recipe-param K=V``); their values are in ``self.options``.
    - ``main``: the network saved as ``best.weights.h5`` and scored by validation.
    - ``ema``: the networks whose weights get an EMA when ``--ema`` is on.
    - ``period``: the update schedule repeats every ``period`` steps (see ``opt.every``).
    - ``needs``: batch keys the recipe reads beyond ``lr`` and ``hr`` (``'kernel'``,
      ``'real_lr'``, ...), checked against the pipeline before training starts.
    - ``saved``: networks written beside the main one (``best.<name>.weights.h5``).
    - ``test_weights``: ``{role: file}`` of a run folder, for ``test.py METHOD --weights RUN``.
    - ``model``: the model ``train.py RECIPE`` trains when the recipe is named in its place.
    - ``val_metrics``: measures ``predict`` returns beside the SR image (columns of
      ``val.csv``).
    - ``best_by``: the validation measure ``best.weights.h5`` maximises (``'psnr'``; a kernel
      estimator's recipe: ``'kernel_psnr'``, one of its ``val_metrics``); ``None`` when no
      measure ranks the weights (a degradation learned without ground truth): then
      ``best.weights.h5`` holds the weights of the latest validation.
    - ``score_crop``: pixels by which ``predict``'s image is smaller than HR (a network of
      valid convolutions); validation crops HR and bicubic alike.
    - ``default_clip_norm``: the global gradient norm the method clips to when
      ``--clip-norm`` is not given (``None``: no clipping).
    - ``learns_degradation``: the recipe trains on LR that a degradation it learns synthesises
      (PDM), so ``--degradation`` only makes validation's LR.

    Args:
        config: the run's :class:`~visionfw.train.config.TrainConfig`.
        model_dict: the main network's link dictionary (resolved from ``config.model``).
        model_name, hparams: the registered model name and its resolved hyperparameters.
        schedule: the learning rate or Keras schedule the optimisers use.
        options: the recipe parameters (strings from the command line are typed here).
    """

    name = None
    params = ()
    main = "model"
    ema = ("model",)
    period = 1
    score_crop = 0
    needs = ()
    saved = ()
    test_weights = {"model": "best.weights.h5"}
    model = None
    val_metrics = ()
    val_with_hr = False          # validation hands predict the ground truth as ``hr`` too
    best_by = "psnr"
    default_clip_norm = None
    learns_degradation = False

    def __init__(self, config, model_dict, model_name=None, hparams=None, schedule=1e-4,
                 options=None):
        self.config = config
        self.model_dict = model_dict
        self.model_name = model_name
        self.hparams = dict(hparams or {})
        self.schedule = schedule
        self.options = self.resolve_options(options or {})
        self.networks = {}
        self.optimizers = {}
        self.want_gains = False

    @classmethod
    def declared_params(cls):
        return {p.name: p for p in cls.params}

    @classmethod
    def resolve_options(cls, given):
        """The recipe's parameters: defaults updated by ``given``, typed and checked."""
        return resolve_params(cls.declared_params(), dict(given), f"recipe {cls.name}",
                              flag="--recipe-param")

    @classmethod
    def check_run(cls, config):
        """Refuse settings this recipe cannot train with (files it reads that do not fit the
        run, ...) with a one-line :class:`TrainError`. Called before the run folder is made
        or TensorFlow starts, with ``config.scale`` and the typed ``config.recipe_params``."""

    @classmethod
    def check_model(cls, config, model_dict):
        """Refuse a network this recipe cannot train with these settings (a kernel estimator
        whose kernel size is not the degradation's), like :meth:`check_run`: one line, before
        the run folder is made."""

    @classmethod
    def default_degradation(cls, scale):
        """The training degradation when ``--degradation`` is not given (``None``: the
        command's default, bicubic)."""
        return None

    def make_model(self, trace=None):
        """The network, built from the run's dictionary (``trace``: see
        :func:`visionfw.graph.builder.build`)."""
        from visionfw.graph.builder import attach_spec, build

        model = build(self.model_dict, trace=trace)
        attach_spec(model, self.model_dict, self.model_name, self.hparams)
        return model

    def view_model(self, model):
        """Score and feed ``model`` in its own image space (:class:`visionfw.recipes.sr.
        ModelView`): sets ``view`` and ``score_crop``; returns the model."""
        from visionfw.recipes.sr import ModelView

        self.view = ModelView(model)
        self.score_crop = self.view.shrink
        return model

    def adam(self, learning_rate=None, updates_per_step=1, epsilon=1e-7):
        """Adam with beta2 = 0.99, as the SR papers' training code uses. An optimiser that
        ``minimize`` steps several times per training step says so (``updates_per_step``),
        so that the run's schedule still follows training steps. ``epsilon`` is Keras'
        default; a recipe that follows an official optimiser passes PyTorch's 1e-8."""
        from visionfw.train.schedule import per_training_step

        rate = learning_rate or per_training_step(self.schedule, updates_per_step)
        return keras.optimizers.Adam(learning_rate=rate, beta_1=0.9, beta_2=0.99,
                                     epsilon=epsilon)

    def build(self):
        """Make ``self.networks`` and ``self.optimizers`` (called inside the strategy scope).

        An optimiser trains the network of the same name, or the networks listed for it in
        ``self.optimizer_networks = {optimizer: (network, ...)}``.
        """
        raise NotImplementedError

    def train_step(self, batch, opt):
        """One step on ``batch`` (a dict of per-replica tensors); returns scalar losses and,
        for the PSNR-gain sampler, ``'gain'``: per-patch PSNR gains over bicubic."""
        raise NotImplementedError

    def predict(self, inputs):
        """SR of a float32 NHWC batch in [0, 1], for validation; ``inputs`` is a dict with
        ``'lr'`` and the degradation's labels (``'kernel'``, ``'noise_sigma'``, ...). A recipe
        with ``val_metrics`` returns ``(sr, {name: (B,) tensor})``: those measures go into
        ``val.csv`` and TensorBoard beside PSNR."""
        raise NotImplementedError

    # ---- helpers the trainer and recipes share

    def main_network(self):
        return self.networks[self.main]

    def networks_of(self, optimizer):
        """The networks an optimiser trains."""
        declared = getattr(self, "optimizer_networks", {}).get(optimizer)
        names = declared or (optimizer,)
        missing = [n for n in names if n not in self.networks]
        if missing:
            raise TrainError(f"recipe {self.name}: optimizer {optimizer!r} trains network(s) "
                             f"{missing}, which it does not define (networks: "
                             f"{sorted(self.networks)})")
        return [self.networks[n] for n in names]

    def synced_variables(self):
        """Non-trainable state averaged over replicas after each step (BatchNorm statistics)."""
        out = []
        for net in self.networks.values():
            out.extend(net.non_trainable_variables)
        return out


def trainable(networks):
    """The trainable variables of a list of networks, each once."""
    seen, out = set(), []
    for net in networks:
        for v in net.trainable_variables:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


class StepServices:
    """What a recipe's ``train_step`` may ask of the trainer during one step.

    Made by the trainer for each traced step function; recipes never build one.

    Attributes:
        step: the step counter (``tf.Variable`` int64), the number of finished steps.
        rng: the run's checkpointed ``tf.random.Generator``.
        phase: ``step % period``, a Python int (the step function is traced per phase).
        replicas: replicas in sync.
    """

    def __init__(self, recipe, step, rng, phase, replicas, clip_norm=None, jit=False):
        self.recipe = recipe
        self.step = step
        self.rng = rng
        self.phase = int(phase)
        self.replicas = int(replicas)
        self.clip_norm = clip_norm
        self.jit = bool(jit)
        self.squares = tf.constant(0.0)     # sum of squared gradient norms of this step
        self.updates = 0

    def every(self, n, offset=0):
        """Whether this step is one of every ``n``-th (``step % n == offset``); ``n`` must
        divide the recipe's ``period``."""
        period = self.recipe.period
        if n < 1 or period % n:
            raise TrainError(f"recipe {self.recipe.name}: opt.every({n}) needs a period that "
                             f"{n} divides; set period = {n} (or a multiple) on the recipe")
        return self.phase % n == offset % n

    def learning_rate(self, optimizer):
        opt = self.recipe.optimizers[optimizer]
        return tf.convert_to_tensor(opt.learning_rate)

    def minimize(self, network, loss_fn):
        """One update: minimise ``loss_fn()`` over ``network``'s weights with its optimiser.

        ``network`` names an optimiser of the recipe: by default each optimiser is named
        after the network it trains (``optimizer_networks`` lets one train several).
        ``loss_fn`` returns a scalar, or ``(scalar, extras)``; ``minimize`` returns the same.

        The loss is this replica's mean; gradients are summed over replicas (each replica's
        share scaled by ``1 / replicas``), clipped to ``--clip-norm`` as a whole, and applied.
        """
        loss, extras, squares = self._update(network, loss_fn)
        self.squares += squares
        self.updates += 1
        return (loss, extras) if extras is not None else loss

    def minimizer(self, network, loss_fn):
        """``update(*tensors)``, the same as ``minimize(network, lambda: loss_fn(*tensors))``,
        for a loop that updates one network several times in a step (IKC's Corrector): the
        forward pass, its gradient and the optimiser's update are traced once and every call
        runs that one function (see :func:`visionfw.runtime.traced`). ``loss_fn`` takes the
        tensors it reads as arguments. With several replicas each call is traced in line."""
        if self.replicas > 1:
            return lambda *args: self.minimize(network, lambda: loss_fn(*args))
        from visionfw.runtime import traced

        update = traced(lambda *args: self._update(network, lambda: loss_fn(*args)))

        def call(*args):
            loss, extras, squares = update(*args)
            self.squares += squares
            self.updates += 1
            return (loss, extras) if extras is not None else loss

        return call

    def _update(self, network, loss_fn):
        """``(loss, extras or None, squared gradient norm)`` of one update of ``network``."""
        if network not in self.recipe.optimizers:
            raise TrainError(f"recipe {self.recipe.name}: minimize({network!r}) has no "
                             f"optimizer of that name; it defines "
                             f"{sorted(self.recipe.optimizers)}")
        variables = trainable(self.recipe.networks_of(network))
        replicas = self.replicas

        def forward_backward():
            with tf.GradientTape() as tape:
                out = loss_fn()
                loss, extras = out if isinstance(out, tuple) else (out, None)
                scaled = loss / replicas
            grads = tape.gradient(scaled, variables)
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
            return loss, extras, grads

        if self.jit:
            forward_backward = tf.function(forward_backward, jit_compile=True, autograph=False)
        loss, extras, grads = forward_backward()
        if self.clip_norm:
            # Clip the gradient of the whole batch: sum over replicas first. Keras sums what it
            # is given once more, so hand it one replica's share.
            ctx = tf.distribute.get_replica_context()
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            grads, norm = tf.clip_by_global_norm(grads, self.clip_norm)
            squares = tf.square(norm) / replicas
            grads = [g / replicas for g in grads]
        else:
            squares = tf.square(tf.linalg.global_norm(grads))
        self.recipe.optimizers[network].apply(grads, variables)
        return loss, extras, squares


def saved_networks(run, roles, holds, what, which=None):
    """``{role: file}`` of the networks a run saved side by side (``best.weights.h5`` for the
    recipe's ``main`` network, ``best.ROLE.weights.h5`` for the others) in the run folder
    ``run``, whose recipe must have the class attribute ``holds``.

    ``which``: ``'last'`` (the end of training), ``'best'``, or ``None``: last if the run has
    finished, else the weights it wrote when it was stopped early (``stopped``: ``--stop-at``,
    Ctrl-C), else best. (A synthetic experiment may choose best by the hidden truth, which a
    stopped run's present state does not use.) One-line :class:`TrainError` for a missing
    folder, a run of another recipe (``what`` names the commands that make the right ones) or
    a run without them yet.
    """
    import os

    from visionfw.train.config import read_settings

    if not os.path.isdir(run):
        raise TrainError(f"{run}: no such run folder")
    name = (read_settings(run) or {}).get("recipe", {}).get("name")
    cls = RECIPES.find(name or "")
    if cls is None or not getattr(cls, holds, False):
        raise TrainError(f"{run}: not a run of {what} (its settings.json names recipe "
                         f"{name!r})")
    stems = [which] if which else ["last", "stopped", "best"]
    for stem in stems:
        files = {role: os.path.join(run, f"{stem}.weights.h5" if role == cls.main
                                    else f"{stem}.{role}.weights.h5") for role in roles}
        if all(os.path.isfile(p) for p in files.values()):
            return files
    raise TrainError(f"{run}: the run has no {' or '.join(stems)} weights of its "
                     f"{' and '.join(roles)} networks yet (train it to its first validation)")
