"""Numerical gradients by centered differences, for checking ops, graphs and your own code.

    num = numerical_gradient(lambda: loss(x), x)            # scalar function of x
    num = numerical_gradient_array(lambda: layer(x), x, dout) # array function, upstream dout
    rel_error(num, analytic) < 1e-7

Both functions perturb `x` in place and restore it, so closures that read `x` see the change.
Use float64: in float32 the differences are dominated by rounding.
"""
from __future__ import annotations

import numpy as np

from dagnet import arguments
from dagnet.errors import ArgumentError, ShapeError


def _check(owner: str, f, x, h) -> None:
    """ArgumentError unless f takes no arguments, x is a float array f reads, h > 0."""
    arguments.function(owner, "f", f, arity=0)
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        what = f"a {x.dtype} array" if isinstance(x, np.ndarray) else f"a {type(x).__name__}"
        raise ArgumentError(f"{owner}: x is {what}; it must be a float numpy array that f "
                            f"reads (perturbed in place), e.g. x = np.asarray(x, np.float64)")
    arguments.number(owner, "h", h, positive=True)


def _centered(x: np.ndarray, h: float, evaluate, difference) -> np.ndarray:
    """Entry by entry: difference(evaluate() at x[i] + h, evaluate() at x[i] - h) / 2h.

    x is perturbed in place (and restored), so closures that read x see each change."""
    flat = x.reshape(-1)  # a view: x must be contiguous so perturbations reach f
    if not np.shares_memory(flat, x):
        raise ArgumentError("numerical gradients need a contiguous x, which f reads and they "
                            "perturb in place: x = np.ascontiguousarray(x) before defining f")
    grad = np.zeros(x.shape, dtype=np.float64)
    g = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = evaluate()
        flat[i] = old - h
        fm = evaluate()
        flat[i] = old
        g[i] = difference(fp, fm) / (2 * h)
    return grad


def numerical_gradient(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """d f() / d x for a scalar-valued f, by centered differences. x: any shape, perturbed in place."""
    _check("numerical_gradient", f, x, h)
    return _centered(x, h, lambda: float(np.sum(f())), lambda fp, fm: fp - fm)


def numerical_gradient_array(f, x: np.ndarray, dout: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Gradient of sum(f() * dout) w.r.t. x: the backward pass of an array-valued f.

    The two outputs are subtracted element-wise before weighting by dout, so rounding in a
    long sum does not swamp small gradient entries.
    """
    _check("numerical_gradient_array", f, x, h)
    return _centered(x, h, lambda: np.array(f(), dtype=np.float64),
                     lambda fp, fm: np.sum((fp - fm) * dout))


def rel_error(a, b) -> float:
    """max |a - b| / max(1e-8, |a| + |b|), element-wise: the classic gradient-check score."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ShapeError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def norm_error(a, b, floor: float = 0.0) -> float:
    """max |a - b| / max(max |b|, floor): the norm-wise comparison to use for float32 results.

    floor: a scale to measure against when b itself is near zero for a reason, e.g. the bias
    gradient of a conv followed by batchnorm (the normalisation cancels it: only rounding
    noise is left, which two valid summation orders give differently)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ShapeError(f"norm_error: shapes differ, {a.shape} vs {b.shape}")
    scale = max(np.max(np.abs(b)) if b.size else 0.0, floor)
    diff = np.max(np.abs(a - b)) if a.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)


def gradcheck_plan(plan, feeds: dict, params=None, h: float = 1e-5, max_entries: int | None = None,
                   seed: int = 0) -> dict:
    """{param: rel_error} of a compiled train plan's analytic gradients against centered
    differences of its loss. Use a float64 plan. The plan's rng is reset before every forward
    so dropout masks stay fixed; `max_entries` samples that many entries per param (seeded)."""
    import numpy as _np

    max_entries = arguments.count("gradcheck_plan", "max_entries", max_entries,
                                  optional="every entry")
    arguments.number("gradcheck_plan", "h", h, positive=True)
    arguments.count("gradcheck_plan", "seed", seed, low=0)

    def loss():
        plan.rng = _np.random.default_rng(plan.seed)
        out = plan.forward(feeds)
        return sum(float(_np.sum(v)) for v in out.values())

    loss()
    analytic = plan.backward()
    rng = _np.random.default_rng(seed)
    errors = {}
    for name in params or list(plan.params):
        p = plan.params[name]
        flat = p.reshape(-1)
        idx = _np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            idx = rng.choice(flat.size, size=max_entries, replace=False)
        num = _np.empty(len(idx))
        for k, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + h
            fp = loss()
            flat[i] = old - h
            fm = loss()
            flat[i] = old
            num[k] = (fp - fm) / (2 * h)
        errors[name] = rel_error(num, analytic[name].reshape(-1)[idx])
    return errors
