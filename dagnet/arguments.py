"""Argument checks for the public API, as the builder checks its own: one line naming the
function, the argument, the value given and what it must be.

    batch_size = count("predict", "batch_size", batch_size)      # an int >= 1, or ArgumentError
    h = number("numerical_gradient", "h", h, positive=True)
    f = function("numerical_gradient", "f", f, arity=0)

A float with an integral value (2.0) passes as a count; a bool never does (True is not 1 to a
user); numpy scalars are numbers.
"""
from __future__ import annotations

import inspect
import math
import os
from numbers import Integral, Real

from dagnet.errors import ArgumentError, DagnetError

def _show(value) -> str:
    if callable(value) and hasattr(value, "__qualname__"):  # not its address: messages are stable
        return f"<{type(value).__name__} {value.__qualname__}>"
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None and shape != ():
        return f"<array of shape {tuple(shape)}, {dtype}>"
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def bad(owner: str, name: str, value, want: str, error=ArgumentError) -> DagnetError:
    return error(f"{owner}: {name} = {_show(value)}; it must be {want}")


def _is_bool(value) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def count(owner: str, name: str, value, low: int = 1, optional: str = "",
          error=ArgumentError) -> int | None:
    """An integer >= low (None allowed when `optional` says what None means)."""
    if value is None and optional:
        return None
    ok = not _is_bool(value) and (isinstance(value, Integral) or (
        isinstance(value, Real) and math.isfinite(float(value)) and float(value).is_integer()))
    if not ok or int(value) < low:
        none = f"None ({optional}) or " if optional else ""
        raise bad(owner, name, value, f"{none}an integer >= {low}", error)
    return int(value)


def number(owner: str, name: str, value, positive: bool = False, low: float | None = 0.0,
           error=ArgumentError) -> float:
    """A finite number > 0 (positive), else >= low (low None: any finite number)."""
    ok = isinstance(value, Real) and not _is_bool(value) and math.isfinite(float(value))
    if ok and positive:
        ok = float(value) > 0
    elif ok and low is not None:
        ok = float(value) >= low
    if not ok:
        want = ("a finite number > 0" if positive else
                f"a finite number >= {low:g}" if low is not None else "a finite number")
        raise bad(owner, name, value, want, error)
    return float(value)


def flag(owner: str, name: str, value, error=ArgumentError) -> bool:
    if not _is_bool(value):
        raise bad(owner, name, value, "True or False", error)
    return bool(value)


def choice(owner: str, name: str, value, choices, error=ArgumentError):
    if not isinstance(value, str) or value not in choices:
        raise bad(owner, name, value, f"one of {', '.join(map(repr, choices))}", error)
    return value


def path(owner: str, name: str, value, error=ArgumentError) -> str:
    """A file path (str or os.PathLike), not empty."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise bad(owner, name, value, "a file path (str or pathlib.Path)", error)
    return os.fspath(value) if not isinstance(os.fspath(value), bytes) else os.fsdecode(value)


def mapping(owner: str, name: str, value, optional: bool = False, error=ArgumentError) -> dict:
    """A dict (None allowed when optional: then {})."""
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise bad(owner, name, value, f"{'None or ' if optional else ''}a dict", error)
    return value


def function(owner: str, name: str, value, arity: int | None = None, error=ArgumentError):
    """A callable; with arity, one that can be called with that many positional arguments."""
    if not callable(value):
        raise bad(owner, name, value, "a function", error)
    if arity is not None:
        try:
            inspect.signature(value).bind(*range(arity))
        except TypeError:
            args = "no arguments" if arity == 0 else f"{arity} argument{'s' * (arity > 1)}"
            raise bad(owner, name, value, f"a function called with {args} (e.g. lambda: "
                                          f"loss(x), reading x from the enclosing scope)",
                      error) from None
        except ValueError:  # builtins without a signature: trust them
            pass
    return value
