"""What each input of a network takes, and feeding it from a batch by name.

A network's inputs are the named nodes of its dictionary's ``inputs``. Each takes one
*role*:

==============  ====================================================  ===============
role            what the input receives                               batch key
==============  ====================================================  ===============
``image``       the LR image (B, h, w, C)                             ``lr``
``kernel``      the blur kernel that made it (B, kh, kw)              ``kernel``
``noise_sigma`` the noise level, on the 0-255 scale (B,)              ``noise_sigma``
``scale``       the SR factor (B,)                                    ``scale``
``sr``          an SR image (B, H, W, C) (correctors)                 --
``kernel_code`` a kernel code (B, t) (code-conditioned networks)      --
``latent``      random draws of N(0, 1) (B, h, w, f) (learned          --
                degradations: PDM's kernel and noise networks)
==============  ====================================================  ===============

The role of an input comes from ``meta['inputs']`` (``{role: node}``) when the dictionary
declares it, else from the node's name (``lr``, ``kernel``, ``noise_sigma``, ``code``, ...),
else -- for a network with one input -- it is the image.
"""
from visionfw.errors import VisionfwError

ROLES = ("image", "kernel", "noise_sigma", "scale", "sr", "kernel_code", "latent")
BATCH_KEYS = {"image": "lr", "kernel": "kernel", "noise_sigma": "noise_sigma",
              "scale": "scale"}
_BY_NAME = {"lr": "image", "image": "image", "x": "image", "kernel": "kernel", "k": "kernel",
            "noise_sigma": "noise_sigma", "sigma": "noise_sigma", "noise": "noise_sigma",
            "scale": "scale", "sr": "sr", "code": "kernel_code", "kernel_code": "kernel_code",
            "z": "latent", "latent": "latent"}


class ConditioningError(VisionfwError, ValueError):
    """A network input whose role is unknown, or a value it needs that is not there."""


def spec_dict(model_or_dict):
    if isinstance(model_or_dict, dict):
        return model_or_dict
    from visionfw.graph.builder import model_spec

    return (model_spec(model_or_dict) or {}).get("dict", {})


def input_roles(model_or_dict):
    """``[(node, role)]`` in the network's input order."""
    d = spec_dict(model_or_dict)
    declared = (d.get("meta") or {}).get("inputs") or {}
    if not isinstance(declared, dict):
        raise ConditioningError(f"meta['inputs'] must map roles to input nodes, got "
                                f"{declared!r}")
    by_node = {}
    for role, node in declared.items():
        if role not in ROLES:
            raise ConditioningError(f"meta['inputs'] names role {role!r}; roles are "
                                    f"{', '.join(ROLES)}")
        by_node[str(node)] = role
    nodes = [spec["node"] if isinstance(spec, dict) else spec
             for spec in (d.get("inputs") or [{"node": 0}])]
    out = []
    for node in nodes:
        role = by_node.get(str(node)) or _BY_NAME.get(str(node).lower())
        if role is None and len(nodes) == 1:
            role = "image"
        if role is None:
            raise ConditioningError(
                f"network {d.get('name', 'model')!r}: input {node!r} has no role; name it "
                f"after one ({', '.join(sorted(_BY_NAME))}) or declare meta['inputs'] = "
                "{role: node}")
        out.append((node, role))
    return out


def roles_of(model_or_dict):
    return [role for _, role in input_roles(model_or_dict)]


def is_conditioned(model_or_dict):
    """Whether the network takes more than an image (a kernel, a noise level, a scale)."""
    return any(r != "image" for r in roles_of(model_or_dict))


def feed(model, values, roles=None):
    """The call argument for ``model`` from ``values`` (``{role or batch key: tensor}``):
    one tensor for a single-input network, else a list in input order."""
    roles = roles or roles_of(model)
    args = []
    for role in roles:
        key = BATCH_KEYS.get(role, role)
        if role in values:
            args.append(values[role])
        elif key in values:
            args.append(values[key])
        else:
            raise ConditioningError(
                f"network {model.name!r} takes a {role.replace('_', ' ')} input, which this "
                f"batch does not carry (it has {', '.join(sorted(values))}); train with a "
                "degradation that records it, e.g. 'gaussian(sigma=0.2~4)+bicubic'")
    return args[0] if len(args) == 1 else args
