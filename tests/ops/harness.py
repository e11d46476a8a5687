"""One generic op-test harness (in the spirit of Chainer's FunctionTestCase).

check_op(name, inputs, attrs) runs an op in float64 and checks:
  * the output shape equals infer_shape of the per-example input shapes (for an op with
    full_shapes, of the full shapes, the inputs `batched` names having the batch axis None);
  * forward does not modify its inputs, backward does not modify dout;
  * every differentiable input's analytic gradient against centered differences
    (rel_error < tol; choose inputs away from kinks for relu/max);
  * float32 forward and backward agree with float64 norm-wise (< 1e-5) and stay float32;
  * `expected` (if given) equals the float64 forward output;
  * for an op with a forward-mode rule, its jvp along random tangents against centered
    differences, and against the backward by the adjoint identity <dout, J t> = <J^T dout, t>.
It returns (out, grads) in float64 so tests can add their own checks.
"""
from __future__ import annotations

import copy

import numpy as np

from dagnet.gradcheck import norm_error, numerical_gradient_array, rel_error
from dagnet.ops import get_op


def _in_shapes(op, inputs, batched=None):
    """The shapes infer_shape takes: per example for batched ports; for an op with full_shapes,
    full shapes with the batch axis as None where `batched` (default: every input) says."""
    if getattr(op, "full_shapes", False):
        batched = [True] * len(inputs) if batched is None else batched
        return [(None, *np.shape(x)[1:]) if b else tuple(np.shape(x))
                for x, b in zip(inputs, batched)]
    return [
        tuple(x.shape[1:]) if i in op.batched_inputs else tuple(np.shape(x))
        for i, x in enumerate(inputs)
    ]


def run_forward(op, inputs, attrs, mode="train", state=None, seed=0):
    """Forward with a fresh copy of the state and a freshly seeded rng (repeatable)."""
    st = copy.deepcopy(state) if state is not None else None
    rng = np.random.default_rng(seed)
    return op.forward(list(inputs), attrs, mode=mode, state=st, rng=rng)


def check_op(name, inputs, attrs=None, *, mode="train", state=None, expected=None,
             tol=1e-7, h=1e-5, f32_tol=1e-5, seed=0, dout=None, batched=None):
    op = get_op(name)
    attrs = dict(attrs or {})
    x64 = [np.array(x, dtype=np.float64) if np.asarray(x).dtype.kind == "f" else np.array(x)
           for x in inputs]
    originals = [x.copy() for x in x64]

    out, cache = run_forward(op, x64, attrs, mode, state, seed)
    out = np.asarray(out)
    for i, (x, x0) in enumerate(zip(x64, originals)):
        assert np.array_equal(x, x0), f"{name}: forward modified input {i}"

    if op.kind == "loss":
        assert out.shape == (), f"{name}: a loss must return a scalar, got {out.shape}"
    else:
        want = tuple(op.infer_shape(_in_shapes(op, x64, batched), attrs))
        if getattr(op, "full_shapes", False) and not (want and want[0] is None):
            assert out.shape == want, f"{name}: out {out.shape}, infer_shape {want}"
        else:
            assert out.shape[1:] == want[getattr(op, "full_shapes", False):], \
                f"{name}: out {out.shape}, infer_shape {want}"
    if expected is not None:
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-8)

    rng = np.random.default_rng(seed + 1)
    if dout is None:
        dout = np.float64(1.0) if op.kind == "loss" else rng.standard_normal(out.shape)
    dout_copy = np.array(dout, copy=True)
    grads = op.backward(dout, cache, attrs)
    assert np.array_equal(dout, dout_copy), f"{name}: backward modified dout"
    assert len(grads) == len(x64), f"{name}: backward returned {len(grads)} grads for {len(x64)} inputs"

    for i, x in enumerate(x64):
        if not op.needs_grad(i) or x.dtype.kind != "f":
            continue
        assert grads[i] is not None, f"{name}: no gradient for input {i}"
        assert grads[i].shape == x.shape, f"{name}: grad {i} shape {grads[i].shape} != {x.shape}"
        num = numerical_gradient_array(
            lambda: run_forward(op, x64, attrs, mode, state, seed)[0], x, dout, h)
        err = rel_error(num, grads[i])
        assert err < tol, f"{name}: gradient of input {i} ({op.input_names[min(i, len(op.input_names)-1)]}) rel_error {err:.2e} >= {tol:g}"

    if op.forward_mode and op.kind != "loss":
        check_jvp(op, x64, attrs, mode, state, seed, dout, grads, tol, h)

    # float32: same numbers to float32 precision, dtype preserved.
    x32 = [x.astype(np.float32) if x.dtype.kind == "f" else x for x in x64]
    out32, cache32 = run_forward(op, x32, attrs, mode, state, seed)
    assert np.asarray(out32).dtype == np.float32, f"{name}: float32 forward gave {np.asarray(out32).dtype}"
    assert norm_error(out32, out) < f32_tol, f"{name}: float32 forward differs {norm_error(out32, out):.2e}"
    g32 = op.backward(np.asarray(dout, dtype=np.float32), cache32, attrs)
    for i, g in enumerate(g32):
        if op.needs_grad(i) and x64[i].dtype.kind == "f":
            assert g.dtype == np.float32, f"{name}: float32 grad {i} is {g.dtype}"
            assert norm_error(g, grads[i]) < 10 * f32_tol, f"{name}: float32 grad {i} differs"
    return out, grads


def check_jvp(op, x64, attrs, mode, state, seed, dout, grads, tol, h):
    """The op's jvp along random tangents of its differentiable float inputs: against centered
    differences of the forward, and <dout, jvp> against sum_i <grad_i, t_i> (the backward)."""
    rng = np.random.default_rng(seed + 2)
    tangents = [rng.standard_normal(x.shape) if op.needs_grad(i) and x.dtype.kind == "f" else None
                for i, x in enumerate(x64)]
    out, cache = run_forward(op, x64, attrs, mode, state, seed)
    t = op.jvp(tangents, x64, np.asarray(out), cache, attrs)
    t = np.zeros(np.shape(out)) if t is None else np.asarray(t)
    assert t.shape == np.shape(out), f"{op.name}: jvp shape {t.shape} != output {np.shape(out)}"

    def shifted(sign):
        xs = [x if ti is None else np.asarray(x + sign * h * ti) for x, ti in zip(x64, tangents)]
        return np.asarray(run_forward(op, xs, attrs, mode, state, seed)[0], dtype=np.float64)

    num = (shifted(1) - shifted(-1)) / (2 * h)
    # norm-wise: entries where the exact derivative is 0 (a product with two zeros) leave
    # O(h^2) in the differences, which an element-wise score would call 100% off
    err = norm_error(t, num, floor=1e-6)
    assert err < tol, f"{op.name}: jvp norm error {err:.2e} against centered differences"
    lhs = float(np.sum(np.asarray(dout) * t))
    rhs = sum(float(np.sum(g * ti)) for g, ti in zip(grads, tangents) if ti is not None)
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs), abs(rhs)), \
        f"{op.name}: <dout, jvp> = {lhs!r} but <backward, tangents> = {rhs!r}"
