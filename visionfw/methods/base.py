"""What a test method is: the runner ``test.py`` scores.

A method takes its networks by *role* (``--weights ROLE=FILE``; the plain ``--weights FILE``
is the role ``model``), the LR image with the labels of the degradation that made it (the true
kernel, the noise level) and the bicubic image, and returns what is scored:

- an *image* method returns ``{"sr": (scored, rgb)}`` -- the array scored against the
  ground truth (Y for a Y model) and the colour image to save -- and, for a loop, one entry
  per step under ``"steps"`` (``[(label, scored, rgb), ...]``);
- a *kernel* method returns ``{"kernel": estimate}``, scored against the true kernel.

Tiling and the x8 self-ensemble are the method's to apply: a method whose networks take a
kernel passes it to every tile and turns it with the image (:func:`visionfw.inference.
self_ensemble`), or refuses them in one line.
"""
from visionfw.errors import VisionfwError
from visionfw.registry import Registry


class MethodError(VisionfwError, ValueError):
    """A method given the wrong networks, a missing role, or an option it cannot honour."""


def _load_methods():
    from visionfw import plugins

    plugins.load_methods()


METHODS = Registry("method", error=MethodError, fold_case=True)
METHODS.add_loader(_load_methods)
register_method = METHODS.class_decorator   # @register_method("name"): register a Method
get_method = METHODS.get
method_names = METHODS.names


def is_method(name):
    return name is not None and str(name) in METHODS


def model_meta(model):
    from visionfw.graph.builder import model_spec

    return (model_spec(model) or {}).get("dict", {}).get("meta", {})


class Method:
    """Base class of the test methods.

    Class attributes: ``roles`` (the networks it needs, by role), ``optional_roles`` (ones
    it can take), ``kind`` (``'image'`` or
    ``'kernel'``: what is scored), ``labels`` (the degradation labels it reads: with LR images
    given from a folder they are not known), ``params`` (typed options, ``--method-param``).

    Args:
        networks: ``{role: keras.Model}``.
        scale: the SR factor (default: the networks' own).
        tile, tile_overlap: run tile by tile (LR pixels).
        self_ensemble: average over the 8 flips and turns.
        options: the method's parameters.
    """

    name = None
    roles = ("model",)
    optional_roles = ()
    kind = "image"
    labels = ()
    params = ()
    color = "rgb"
    shrink = 0

    def __init__(self, networks, scale=None, tile=None, tile_overlap=16, self_ensemble=False,
                 **options):
        from visionfw.params import resolve_params

        missing = [r for r in self.roles if r not in networks]
        extra = [r for r in networks if r not in self.roles + self.optional_roles]
        if missing or extra:
            what = []
            if missing:
                what.append(f"no network for role(s) {', '.join(missing)}")
            if extra:
                what.append(f"unknown role(s) {', '.join(extra)}")
            raise MethodError(f"method {self.name}: {'; '.join(what)}; it takes "
                              + ", ".join(f"--weights {r}=FILE" for r in self.roles))
        self.networks = dict(networks)
        self.options = resolve_params({p.name: p for p in self.params}, options,
                                      f"method {self.name}", flag="--method-param")
        self.tile, self.tile_overlap, self.ensemble = tile, tile_overlap, self_ensemble
        self.scale = self._scale(scale)
        self.check()
        self.accepts = self.declared()
        self.accepts.check(f"method {self.name}", scale=self.scale, ensemble=self.ensemble)

    def _scale(self, scale):
        scales = {r: model_meta(n).get("scale") for r, n in self.networks.items()}
        known = {int(s) for s in scales.values() if s is not None}
        if scale is None:
            if len(known) != 1:
                raise MethodError(f"method {self.name}: the networks do not state one scale "
                                  f"({scales}); pass --scale")
            return known.pop()
        for role, s in scales.items():
            if s is not None and int(s) != int(scale) and self.fixed_scale(role):
                raise MethodError(f"model {self.networks[role].name!r} up-scales by {s}, not "
                                  f"{scale}; rebuild it with the scale you test")
        return int(scale)

    def fixed_scale(self, role):
        """Whether the network of ``role`` works at its own scale only."""
        return True

    def check(self):
        """Refuse networks that do not fit the method (one line)."""

    def declared(self):
        """What the method can honour (:class:`visionfw.methods.accepts.Accepts`): by default
        what its ``model`` network declares. ``test.py`` checks every degradation against it
        before running an image; the scale and the self-ensemble are checked here."""
        from visionfw.methods.accepts import Accepts, accepts_of

        model = self.networks.get("model")
        return accepts_of(model) if model is not None else Accepts()

    def check_degradation(self, degradation):
        """One-line :class:`MethodError` if ``degradation`` is one the method cannot model."""
        self.accepts.check(f"method {self.name}", degradation, self.scale, self.ensemble)

    def crop(self, img):
        """The part of an HR-sized image the output covers (all of it without shrink)."""
        if not self.shrink:
            return img
        top = self.shrink // 2
        bottom = self.shrink - top
        return img[top:img.shape[0] - bottom, top:img.shape[1] - bottom]

    def __call__(self, lr, bicubic, labels):
        raise NotImplementedError

    def protocol(self):
        """What the report's header records about the method."""
        return {"method": self.name, "model_color": self.color}
