"""Numerical gradients by centered differences, for checking ops, graphs and your own code.

    num = numerical_gradient(lambda: loss(x), x)            # scalar function of x
    num = numerical_gradient_array(lambda: layer(x), x, dout) # array function, upstream dout
    rel_error(num, analytic) < 1e-7                          # element-wise, for one op
    gradcheck_plan(plan, feeds)                              # a whole float64 plan, norm-wise

Both functions perturb `x` in place and restore it, so closures that read `x` see the change.
Use float64: in float32 the differences are dominated by rounding.
"""
from __future__ import annotations

import numpy as np

from dagnet import arguments
from dagnet.errors import ArgumentError, DagnetError, DTypeError, ShapeError


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


class GradcheckResult(dict):
    """{param: error} of gradcheck_plan, plus `scale` (the largest analytic gradient entry of
    the whole graph, what every error is measured against), `grad_max` {param: max |grad|} and
    `refined` {param: entries measured again with a smaller step, a kink lying within h}."""

    def __init__(self, errors: dict, scale: float, grad_max: dict, refined: dict):
        super().__init__(errors)
        self.scale = scale
        self.grad_max = grad_max
        self.refined = refined


def gradcheck_plan(plan, feeds: dict, params=None, h: float = 1e-5, max_entries: int | None = None,
                   seed: int = 0, kink_tol: float = 1e-8) -> GradcheckResult:
    """{param: error} of a compiled float64 train plan's analytic gradients against centered
    differences of its loss, each error norm-wise: max |numeric - analytic| / scale, where
    scale is the largest analytic gradient entry of the whole graph.

    Element-wise relative errors cry wolf on entries whose gradient is (near) zero for a reason
    (a conv bias before batchnorm, a relu-dead unit): there the centered difference is rounding
    noise, about eps * |loss| / h, over a denominator of the same noise. Measured against the
    graph's scale a wrong gradient still stands out: 1% off on a param whose gradients are
    1e-3 of the scale is an error of 1e-5.

    Kinks: where a relu or max-pool input lies within the step of its kink, the difference
    over [x - h, x + h] mixes two slopes. An entry off by more than kink_tol * scale is measured
    again with a 10 (then 100) times smaller step; only where the difference changes by more
    than kink_tol * scale (a kink, not the analytic gradient, is to blame) is the smaller step's
    kept. A smooth loss gives the same difference at every step, so a wrong gradient still fails.

    The plan's rng is reset before every forward so dropout masks stay fixed; `max_entries`
    samples that many entries per param (seeded)."""
    if np.dtype(plan.dtype) != np.float64:
        raise DTypeError(f"gradcheck_plan needs a float64 plan, got {np.dtype(plan.dtype)}: in "
                         f"float32 the differences are rounding noise; compile(..., dtype='float64')")
    max_entries = arguments.count("gradcheck_plan", "max_entries", max_entries,
                                  optional="every entry")
    arguments.number("gradcheck_plan", "h", h, positive=True)
    if not (isinstance(kink_tol, float) and kink_tol == np.inf):  # inf: never measure again
        arguments.number("gradcheck_plan", "kink_tol", kink_tol, positive=True)
    arguments.count("gradcheck_plan", "seed", seed, low=0)
    names = list(plan.params) if params is None else list(params)
    unknown = [p for p in names if p not in plan.params]
    if unknown:
        raise DagnetError(f"gradcheck_plan: no param '{unknown[0]}' in the plan; its params: "
                          f"{', '.join(plan.params)}")

    max_entries = arguments.count("gradcheck_plan", "max_entries", max_entries,
                                  optional="every entry")
    arguments.number("gradcheck_plan", "h", h, positive=True)
    arguments.count("gradcheck_plan", "seed", seed, low=0)

    def loss():
        plan.rng = np.random.default_rng(plan.seed)
        out = plan.forward(feeds)
        return sum(float(np.sum(v)) for v in out.values())

    def centered(flat, i, step):
        old = flat[i]
        flat[i] = old + step
        fp = loss()
        flat[i] = old - step
        fm = loss()
        flat[i] = old
        return (fp - fm) / (2 * step)

    loss()
    analytic = {p: g.copy() for p, g in plan.backward().items() if p in plan.params}
    grad_max = {p: float(np.max(np.abs(g))) if g.size else 0.0 for p, g in analytic.items()}
    scale = max(grad_max.values(), default=0.0)
    slack = kink_tol * (scale or 1.0)
    rng = np.random.default_rng(seed)
    errors, refined = {}, {}
    for name in names:
        flat = plan.params[name].reshape(-1)
        want = analytic[name].reshape(-1)
        idx = np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            idx = rng.choice(flat.size, size=max_entries, replace=False)
        num = np.empty(len(idx))
        refined[name] = 0
        for k, i in enumerate(idx):
            num[k], step = centered(flat, i, h), h
            while abs(num[k] - want[i]) > slack and step > h / 100:
                finer = centered(flat, i, step / 10)
                if abs(finer - num[k]) <= slack:
                    break  # the same at both steps: smooth here, the analytic gradient is off
                num[k], step = finer, step / 10
            refined[name] += step < h
        errors[name] = norm_error(num, want[idx], scale)
    return GradcheckResult(errors, scale, {p: grad_max[p] for p in names}, refined)
