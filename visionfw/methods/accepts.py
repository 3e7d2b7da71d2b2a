"""What a network can honour: the degradations, scales and orientations it models.

One declaration per network, read by ``test.py`` (before any image is run), ``python -m
visionfw sr`` and the training recipes, so that a test-time setting a network cannot model is
refused in one line where training would refuse it too. A network declares it in its
dictionary's ``meta['accepts']``::

    {"blur_padding": ["circular"],     # paddings of the blur it inverts (absent: any)
     "down": ["direct(offset=0)"],     # down-sampling ops it inverts (absent: any)
     "needs_blur": true,               # the degradation must have a blur (the kernel is fed)
     "ensemble": false,                # whether the x8 self-ensemble is valid
     "why": "..."}                     # the reason, quoted in the error

and ``meta['trained_scales']`` (written by training) lists the factors it learnt. A USRNet saved
before the declaration existed is recognised by its data step and given USRNet's declaration;
one that records no scales is held to the paper's 2, 3 and 4.
"""
from dataclasses import dataclass

from visionfw.methods.base import MethodError

USRNET_ACCEPTS = {
    "blur_padding": ["circular"], "down": ["direct(offset=0)"], "needs_blur": True,
    "ensemble": False,
    "why": "USRNet's data step solves circular blur followed by upper-left decimation in "
           "closed form, and its decimation grid does not turn with the image",
}
USRNET_SCALES = (2, 3, 4)    # the paper's factors, for files that record none


@dataclass(frozen=True)
class Accepts:
    """A network's declaration (see the module docstring); ``None`` fields accept anything."""

    blur_padding: tuple = None
    down: tuple = None
    needs_blur: bool = False
    ensemble: bool = True
    scales: tuple = None
    why: str = ""

    @classmethod
    def from_meta(cls, record, scales=None):
        record = dict(record or {})
        unknown = set(record) - {"blur_padding", "down", "needs_blur", "ensemble", "why"}
        if unknown:
            raise MethodError(f"meta['accepts'] has unknown key(s) {sorted(unknown)}")

        def many(key):
            value = record.get(key)
            return None if value is None else tuple(str(v) for v in value)

        return cls(many("blur_padding"), many("down"), bool(record.get("needs_blur", False)),
                   bool(record.get("ensemble", True)),
                   None if scales is None else tuple(int(s) for s in scales),
                   str(record.get("why", "")))

    def problems(self, degradation=None, scale=None, ensemble=False):
        """What of ``degradation`` (a :class:`~visionfw.degradation.Degradation`), ``scale``
        and the self-ensemble this network cannot honour: a list of short phrases."""
        out = []
        if scale is not None and self.scales is not None and int(scale) not in self.scales:
            out.append(f"scale {scale} (trained at {', '.join(map(str, self.scales))})")
        if ensemble and not self.ensemble:
            out.append("the x8 self-ensemble")
        if degradation is None:
            return out
        blur = degradation.blur_op
        if blur is None and self.needs_blur:
            out.append("a degradation without blur")
        padding = getattr(blur, "args", {}).get("padding") if blur is not None else None
        if blur is not None and self.blur_padding is not None and padding not in \
                self.blur_padding:
            out.append(f"{padding} padding of the blur (it models "
                       f"{' or '.join(self.blur_padding)})")
        if self.down is not None:
            down = next((op for op in degradation.ops if op.stage == "down"), None)
            name = down.describe() if down is not None else "none"
            if name not in self.down:
                out.append(f"{name} down-sampling (it models {' or '.join(self.down)})")
        return out

    def check(self, who, degradation=None, scale=None, ensemble=False, error=MethodError):
        """Raise ``error`` in one line if :meth:`problems` finds any."""
        wrong = self.problems(degradation, scale, ensemble)
        if wrong:
            modelled = self.problems(degradation, None, ensemble)   # the why is about these
            reason = f" ({self.why})" if self.why and modelled else ""
            raise error(f"{who} cannot honour {'; '.join(wrong)}{reason}")


def accepts_of(model_or_dict):
    """The :class:`Accepts` of a network (or its dictionary)."""
    from visionfw.conditioning import spec_dict

    d = spec_dict(model_or_dict)
    meta = d.get("meta") or {}
    record = meta.get("accepts")
    scales = meta.get("trained_scales")
    if _uses(d, "USRNetDataStep"):
        record, scales = record or USRNET_ACCEPTS, scales or USRNET_SCALES
    return Accepts.from_meta(record, scales)


def _uses(d, name):
    """Whether dictionary ``d`` (or a nested one) has a link of layer/block ``name``."""
    for key, value in d.items():
        if not key.endswith("_sub"):
            continue
        for sub in value if isinstance(value, list) else [value]:
            if sub == name or (isinstance(sub, dict) and _uses(sub, name)):
                return True
    return False
