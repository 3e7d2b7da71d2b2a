"""Typed parameters with defaults: model hyperparameters (``--param``) and recipe and method
parameters (``--recipe-param``, ``--method-param``) share these rules.

A parameter's type comes from its annotation or its default (int, float, bool or str); a
command-line string is turned into that type, and a value of the wrong type is a one-line
:class:`~visionfw.errors.HyperparameterError`.
"""
import inspect
from dataclasses import dataclass

from visionfw.errors import HyperparameterError

TYPES = (int, float, bool, str)


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: type
    default: object
    help: str = ""

    def coerce(self, value, model):
        """Turn a command-line string (or a number of the wrong kind) into this type."""
        t = self.type
        if isinstance(value, str) and t is not str:
            text = value.strip()
            try:
                if t is bool:
                    low = text.lower()
                    if low in ("1", "true", "yes", "on"):
                        return True
                    if low in ("0", "false", "no", "off"):
                        return False
                    raise ValueError
                if t is int:
                    return int(text)
                if t is float:
                    return float(text)
            except ValueError:
                raise HyperparameterError(
                    f"{model}: {self.name}={value!r} is not a valid {t.__name__}") from None
        if t is bool and not isinstance(value, bool):
            raise HyperparameterError(f"{model}: {self.name} must be true or false, got {value!r}")
        if t is int and (isinstance(value, bool) or not isinstance(value, int)):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise HyperparameterError(f"{model}: {self.name} must be an integer, got {value!r}")
        if t is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise HyperparameterError(f"{model}: {self.name} must be a number, got {value!r}")
        if t is float:
            return float(value)
        if t is str and not isinstance(value, str):
            raise HyperparameterError(f"{model}: {self.name} must be a string, got {value!r}")
        return value


def params_of(fn, owner):
    """``{name: Hyperparameter}`` from the keyword parameters of ``fn`` (each needs a default)."""
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise TypeError(f"parameter {p.name} of {owner} needs a default")
        t = p.annotation if p.annotation is not p.empty else type(p.default)
        if t not in TYPES:
            raise TypeError(f"parameter {p.name} of {owner}: type {t} is not int, float, bool "
                            "or str")
        out[p.name] = Hyperparameter(p.name, t, p.default)
    return out


def resolve_params(declared, given, owner, flag="--param"):
    """Defaults of ``declared`` updated by ``given``, each checked and coerced to its type."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        valid = ", ".join(f"{h.name} ({h.type.__name__}, default {h.default!r})"
                          for h in declared.values()) or "none"
        what = "hyperparameter" if flag == "--param" else f"parameter ({flag})"
        raise HyperparameterError(f"{owner} has no {what} {', '.join(unknown)}; valid: {valid}")
    values = {k: h.default for k, h in declared.items()}
    for key, value in given.items():
        values[key] = declared[key].coerce(value, owner)
    return values


def parse_pairs(pairs, flag="--param"):
    """``('B=8', 'filters=32')`` -> ``{'B': '8', 'filters': '32'}`` (typed later)."""
    out = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise HyperparameterError(f"{flag} {pair!r} is not of the form NAME=VALUE, "
                                      f"e.g. {flag} B=8")
        if key in out:
            raise HyperparameterError(f"{flag} {key} is given twice")
        out[key] = value
    return out
