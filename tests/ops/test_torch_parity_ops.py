"""Parity with PyTorch: outputs and every gradient, norm-wise within 1e-5 (float32) / 1e-10 (float64)."""
import numpy as np
import pytest

from dagnet.gradcheck import norm_error
from dagnet.ops import get_op

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {np.float32: 1e-5, np.float64: 1e-10}
DTYPES = [np.float32, np.float64]


def randn(shape, dtype, seed=0, scale=1.0, shift=0.0):
    return (shift + scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def run_torch(fn, inputs, dout, grad_ports):
    """torch_fn's output and the gradients of `grad_ports` for upstream gradient dout, as numpy."""
    ts = [torch.from_numpy(np.array(x)) for x in inputs]
    for i in grad_ports:
        ts[i].requires_grad_(True)
    out = fn(*ts)
    out.backward(torch.from_numpy(np.asarray(dout)))
    return out.detach().numpy(), [ts[i].grad.numpy() for i in grad_ports]


def assert_close(ours, theirs, dtype, what):
    """ours has `dtype` and matches theirs norm-wise within TOL[dtype]."""
    ours = np.asarray(ours)
    assert ours.dtype == dtype, f"{what}: dtype {ours.dtype}"
    err = norm_error(ours, theirs)
    assert err < TOL[dtype], f"{what}: norm error {err:.2e}"


def assert_parity(name, inputs, attrs, torch_fn, dtype, grad_ports, mode="train", state=None, dout=None):
    """Run op `name` and torch_fn forward and backward with one dout; compare output and grads."""
    op = get_op(name)
    out, cache = op.forward(list(inputs), attrs, mode=mode, state=state)
    if dout is None:
        dout = randn(np.shape(out), dtype, seed=1)
    grads = op.backward(dout, cache, attrs)
    t_out, t_grads = run_torch(torch_fn, inputs, dout, grad_ports)
    assert_close(out, t_out, dtype, f"{name} output")
    for i, g in zip(grad_ports, t_grads):
        assert_close(grads[i], g, dtype, f"{name} grad {i}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(4, 6), (1, 6), (3, 2, 3, 4)])
def test_affine(dtype, x_shape):
    d = int(np.prod(x_shape[1:]))
    inputs = [randn(x_shape, dtype), randn((d, 5), dtype, 2), randn(5, dtype, 3)]
    assert_parity("affine", inputs, {},
                  lambda x, w, b: F.linear(x.reshape(x.shape[0], -1), w.T, b), dtype, (0, 1, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 5, 5), (1, 2, 3, 4)])
def test_batchnorm_train(dtype, shape):
    c = shape[1]
    x, gamma, beta = randn(shape, dtype, shift=2, scale=3), randn(c, dtype, 2), randn(c, dtype, 3)
    attrs = {"eps": 1e-5, "momentum": 0.9}
    state = get_op("batchnorm").init_state([shape[1:]], attrs, dtype)
    rm, rv = torch.from_numpy(np.zeros(c, dtype)), torch.from_numpy(np.ones(c, dtype))

    def torch_bn(x, g, b):
        # PyTorch's momentum weighs the batch statistic: 1 - dagnet's momentum
        return F.batch_norm(x, rm, rv, g, b, training=True, momentum=0.1, eps=1e-5)

    assert_parity("batchnorm", [x, gamma, beta], attrs, torch_bn, dtype, (0, 1, 2), state=state)
    assert_close(state["running_mean"], rm.numpy(), dtype, "running_mean")
    assert_close(state["running_var"], rv.numpy(), dtype, "running_var")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 4), (1, 4), (2, 3, 4, 4)])
def test_batchnorm_eval(dtype, shape):
    c = shape[1]
    x, gamma, beta = randn(shape, dtype), randn(c, dtype, 2), randn(c, dtype, 3)
    mean = randn(c, dtype, 4)
    var = np.random.default_rng(5).uniform(0.5, 2.0, c).astype(dtype)
    state = {"running_mean": mean.copy(), "running_var": var.copy()}
    assert_parity("batchnorm", [x, gamma, beta], {"eps": 1e-3}, lambda x, g, b: F.batch_norm(
        x, torch.from_numpy(mean), torch.from_numpy(var), g, b, training=False, eps=1e-3),
        dtype, (0, 1, 2), mode="eval", state=state)
    np.testing.assert_array_equal(state["running_mean"], mean)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_eval(dtype):
    x = randn((3, 4, 5), dtype)
    assert_parity("dropout", [x], {"p": 0.3}, lambda x: F.dropout(x, 0.3, training=False),
                  dtype, (0,), mode="eval")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", [(6, 5), (1, 3), (16, 10)])
def test_softmax_cross_entropy(dtype, n, c):
    scores = randn((n, c), dtype, scale=2)
    labels = np.random.default_rng(1).integers(0, c, size=n)
    assert_parity("softmax_cross_entropy", [scores, labels], {},
                  lambda s, y: F.cross_entropy(s, y), dtype, (0,), dout=np.asarray(0.7, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", [(6, 5), (1, 3), (16, 10)])
@pytest.mark.parametrize("delta", [1.0, 0.5])
def test_svm_loss(dtype, n, c, delta):
    scores = randn((n, c), dtype)
    labels = np.random.default_rng(1).integers(0, c, size=n)
    # multi_margin_loss divides each example's hinge sum by C; svm_loss does not
    assert_parity("svm_loss", [scores, labels], {"delta": delta},
                  lambda s, y: c * F.multi_margin_loss(s, y, margin=delta), dtype, (0,),
                  dout=np.asarray(1.3, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 7), (1, 3)])
def test_softmax(dtype, shape):
    assert_parity("softmax", [randn(shape, dtype, scale=3)], {}, lambda x: F.softmax(x, dim=1), dtype, (0,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_add(dtype):
    xs = [randn((2, 3, 4, 4), dtype, seed) for seed in range(3)]
    assert_parity("add", xs, {}, lambda a, b, c: a + b + c, dtype, (0, 1, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [1, 2])
def test_concat(dtype, axis):
    xs = [randn((2, 3, 4, 4), dtype), randn((2, 3, 4, 4), dtype, 1)]
    assert_parity("concat", xs, {"axis": axis}, lambda a, b: torch.cat([a, b], dim=axis), dtype, (0, 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_flatten(dtype):
    assert_parity("flatten", [randn((3, 2, 4, 5), dtype)], {}, lambda x: torch.flatten(x, 1), dtype, (0,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,channels", [((4, 6), 6), ((2, 3, 4, 5), 3), ((2, 3, 4, 5), 1),
                                              ((3, 2, 7), 2)])
def test_prelu(dtype, x_shape, channels):
    """torch keeps the slopes as a (C,) vector; dagnet as (C, 1, ...), broadcast as ONNX does."""
    x = randn(x_shape, dtype)
    slope = np.random.default_rng(2).uniform(-0.5, 0.8, channels).astype(dtype)
    ours = slope.reshape((channels,) + (1,) * (len(x_shape) - 2)) if channels > 1 else slope
    op = get_op("prelu")
    out, cache = op.forward([x, ours], {})
    dout = randn(x_shape, dtype, seed=1)
    dx, dslope = op.backward(dout, cache, {})
    t_out, (t_dx, t_dw) = run_torch(lambda a, w: F.prelu(a, w), [x, slope], dout, (0, 1))
    assert_close(out, t_out, dtype, "prelu output")
    assert_close(dx, t_dx, dtype, "prelu grad x")
    assert_close(dslope.reshape(-1), t_dw, dtype, "prelu grad slope")


ACTIVATIONS = [
    ("gelu", {}, lambda x: F.gelu(x)),
    ("gelu", {"approximate": "tanh"}, lambda x: F.gelu(x, approximate="tanh")),
    ("selu", {}, lambda x: F.selu(x)),
    ("softplus", {}, lambda x: F.softplus(x)),
    ("softsign", {}, lambda x: F.softsign(x)),
    # F.hardsigmoid's CPU backward multiplies by the float literal 1.0f / 6.0f, 3e-8 off in
    # float64: torch's autograd of the formula itself is the float64 reference
    ("hardsigmoid", {}, lambda x: torch.clamp(x / 6 + 0.5, 0, 1)),
    ("hardswish", {}, lambda x: F.hardswish(x)),
    ("mish", {}, lambda x: F.mish(x)),
    ("hardsigmoid", {"alpha": 0.2, "beta": 0.5},  # ONNX's defaults, Keras 2's hard_sigmoid
     lambda x: torch.clamp(0.2 * x + 0.5, 0, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 5, 5)])
@pytest.mark.parametrize("name,attrs,fn", ACTIVATIONS, ids=[f"{a[0]}-{i}" for i, a in
                                                           enumerate(ACTIVATIONS)])
def test_activation(dtype, shape, name, attrs, fn):
    if name == "hardsigmoid" and not attrs:
        x = randn(shape, np.float32, scale=4)
        assert_close(get_op(name).forward([x], {})[0], F.hardsigmoid(torch.from_numpy(x)).numpy(),
                     np.float32, "hardsigmoid as F.hardsigmoid")
    # scale 4: both sides of the hard ops' kinks at +-3 and the smooth ops' tails
    assert_parity(name, [randn(shape, dtype, scale=4)], attrs, fn, dtype, (0,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((4, 7), -1), ((2, 3, 4, 5), 1), ((2, 3, 4, 5), 2),
                                        ((2, 3, 4, 5), -1), ((3, 5, 6), -2)])
@pytest.mark.parametrize("name,fn", [("softmax", F.softmax), ("log_softmax", F.log_softmax)])
def test_softmax_any_axis(dtype, shape, axis, name, fn):
    assert_parity(name, [randn(shape, dtype, scale=3)], {"axis": axis},
                  lambda x: fn(x, dim=axis), dtype, (0,))
