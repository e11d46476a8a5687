"""The inference program (dagnet/runtime/program.py, lower.py): an eval plan's numbers as the
executor's step-by-step run gives them, with batchnorm folded, residual joins in the conv's
output pass, weights refolded when params or statistics change, an arena that reuses memory;
and the direct conv's epilogue (+ skip, relu) against the loop reference."""
import numpy as np
import pytest

import dagnet
from dagnet import blocks, kernels
from dagnet import reference as ref
from dagnet.models import lenet, lenet_bn, resnet_small
from dagnet.ops import direct
from dagnet.runtime import calls, program
from dagnet.runtime.lower import fold
from tests.compiler import nets

ZOO = {"lenet": (lenet, (1, 28, 28)), "lenet_bn": (lenet_bn, (1, 28, 28)),
       "resnet_small": (resnet_small, (1, 28, 28))}


def _stats(plan, seed=1):
    """Running statistics away from (0, 1), so that folding them matters."""
    rng = np.random.default_rng(seed)
    for st in plan.state.values():
        for k, v in st.items():
            if k == "running_mean":
                v[...] = rng.normal(0, 0.3, v.shape)
            elif k == "running_var":
                v[...] = rng.uniform(0.3, 3.0, v.shape)


def _eval_plan(graph, dtype="float64"):
    train = dagnet.compile(graph, dtype=dtype, seed=0)
    _stats(train)
    return dagnet.compile(graph, dtype=dtype, mode="eval", params=train.params, state=train.state)


def _both(plan, feeds, outputs=None, monkeypatch=None):
    """(the program's outputs, the executor's step by step)."""
    got = plan.forward(feeds, mode="eval", outputs=outputs)
    program.ENABLED = False
    try:
        want = plan.forward(feeds, mode="eval", outputs=outputs)
    finally:
        program.ENABLED = True
    return got, want


def _close(got, want, rtol):
    assert set(got) == set(want)
    for k in got:
        scale = max(1.0, float(np.abs(want[k]).max()))
        assert np.abs(got[k] - want[k]).max() <= rtol * scale, k


@pytest.mark.parametrize("name", sorted(nets.ALL))
def test_small_nets_equal_the_executor(name):
    g = nets.ALL[name]()
    plan = _eval_plan(g)
    for n, seed in ((5, 0), (1, 1), (5, 2), (3, 3)):  # rebinding and the two batches kept
        _close(*_both(plan, nets.feeds_for(g, n=n, seed=seed)), 1e-12)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_equal_the_executor(name, dtype, rtol):
    build, shape = ZOO[name]
    plan = _eval_plan(build(), dtype)
    x = np.random.default_rng(0).standard_normal((4, *shape)).astype(dtype)
    for batch in (4, 1, 4):
        _close(*_both(plan, {"x": x[:batch]}, outputs=["scores"]), rtol)


def test_resnet_small_is_lowered_to_folded_convs_with_their_joins():
    plan = _eval_plan(resnet_small())
    plan.forward({"x": np.zeros((1, 1, 28, 28))}, mode="eval", outputs=["scores"])
    (prog,) = plan.executor.programs.values()
    kinds = [i.kind for i in prog.code]
    convs = [i for i in prog.code if i.kind == "conv"]
    assert len(convs) == 10 and sum(bool(c.bn) for c in convs) == 9  # every batchnorm folded
    assert sum(c.residual is not None for c in convs) == 4  # the four blocks' joins
    assert [c.name for c in convs if not c.relu] == ["block3.skip+block3.add+block3.relu2#skip"]
    assert not any("batchnorm" in i.step.op_name for i in prog.code if i.kind == "step")
    # the head: both global_avg_pools and their concat in one call, reading the convs' values
    assert kinds[-2:] == ["gap", "affine"] and "member" not in kinds and "step" not in kinds
    head = prog.code[-2]
    assert head.name == "features" and head.pooled == (True, True)
    assert head.reads == ("block2.add+block2.relu2", "block4.add+block4.relu2+gap2#join")


def test_folded_weights_follow_params_and_statistics_changed_in_place():
    plan = _eval_plan(resnet_small())
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28))
    first = plan.forward({"x": x}, mode="eval", outputs=["scores"])
    plan.params["block1.conv1.w"] *= 1.5
    plan.state["block2.bn1"]["running_var"] += 0.7
    got, want = _both(plan, {"x": x}, outputs=["scores"])
    _close(got, want, 1e-12)
    assert not np.allclose(got["scores"], first["scores"])
    plan.params["stem.bn.gamma"] = plan.params["stem.bn.gamma"] * 0.5  # replaced, not changed
    _close(*_both(plan, {"x": x}, outputs=["scores"]), 1e-12)


def test_fully_connected_layers_are_affine_instructions_that_follow_their_params():
    plan = _eval_plan(lenet())
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28))
    first = plan.forward({"x": x}, mode="eval", outputs=["scores"])
    (prog,) = plan.executor.programs.values()
    assert [(i.kind, i.relu) for i in prog.code[2:]] == [("affine", True), ("affine", False)]
    plan.params["fc1.w"] *= 1.5  # changed in place
    got, want = _both(plan, {"x": x}, outputs=["scores"])
    _close(got, want, 1e-12)
    assert not np.allclose(got["scores"], first["scores"])
    plan.params["scores.b"] = plan.params["scores.b"] + 1.0  # replaced, not changed
    got2, want2 = _both(plan, {"x": x}, outputs=["scores"])
    _close(got2, want2, 1e-12)
    np.testing.assert_allclose(got2["scores"], got["scores"] + 1.0)


def test_a_batch_affine_gives_the_ops_numbers_for_any_thread_count(monkeypatch):
    # large enough for blocks.matmul to split the product (over 2**22 multiply-adds): the
    # program's affine runs on its one-thread GEMMs, as the op does, on any number of threads
    # (one thread included: blocks.run then holds OpenBLAS at one thread too)
    plan = _eval_plan(nets.two_layer(d=800, hidden=500, classes=10), "float32")
    x = np.random.default_rng(3).standard_normal((64, 800)).astype(np.float32)
    name = "x"
    got = plan.forward({name: x}, mode="eval", outputs=["fc2"])["fc2"]
    (prog,) = plan.executor.programs.values()
    assert [i.kind for i in prog.code] == ["affine", "affine"]
    monkeypatch.setattr(program, "ENABLED", False)  # the executor's steps: the same bits
    np.testing.assert_array_equal(plan.forward({name: x}, mode="eval", outputs=["fc2"])["fc2"], got)
    monkeypatch.setattr(program, "ENABLED", True)
    for threads in (1, 3, 4):
        monkeypatch.setattr(kernels, "NUM_THREADS", threads)
        plan.executor.programs.clear()
        np.testing.assert_array_equal(plan.forward({name: x}, mode="eval", outputs=["fc2"])["fc2"], got)


def test_a_batch_affine_splits_as_the_eval_op_splits(monkeypatch):
    # the program's fully connected layers and the executor's eval steps cut their products
    # into the same blocks (blocks.EVAL_MIN_BLOCK_SIDE wide: LeNet's fc1 at batch 256), hence
    # the same bits
    plan = _eval_plan(nets.two_layer(d=800, hidden=500, classes=10), "float32")
    x = np.random.default_rng(5).standard_normal((256, 800)).astype(np.float32)
    counts = []
    real_run = blocks.run
    monkeypatch.setattr(blocks, "run", lambda fn, n: (counts.append(n), real_run(fn, n)))
    got = plan.forward({"x": x}, mode="eval", outputs=["fc2"])["fc2"]
    in_program, counts[:] = list(counts), []
    monkeypatch.setattr(program, "ENABLED", False)
    want = plan.forward({"x": x}, mode="eval", outputs=["fc2"])["fc2"]
    assert in_program == [500 // blocks.EVAL_MIN_BLOCK_SIDE] and counts == in_program
    np.testing.assert_array_equal(got, want)


def test_an_affine_param_of_another_dtype_is_refused_as_the_executor_refuses_it():
    plan = _eval_plan(lenet())
    x = np.zeros((1, 1, 28, 28))
    plan.forward({"x": x}, mode="eval", outputs=["scores"])
    plan.params["scores.w"] = plan.params["scores.w"].astype(np.float32)
    with pytest.raises(dagnet.errors.DTypeError, match="scores.*affine.*float32") as got:
        plan.forward({"x": x}, mode="eval", outputs=["scores"])
    program.ENABLED = False
    try:
        with pytest.raises(dagnet.errors.DTypeError) as want:
            plan.forward({"x": x}, mode="eval", outputs=["scores"])
    finally:
        program.ENABLED = True
    assert str(got.value) == str(want.value)


def test_same_bytes_compares_contiguous_arrays_byte_for_byte():
    a = np.arange(6.0).reshape(2, 3)
    b = a.copy()
    assert program.same_bytes([a, b[0]], [a.copy(), b[0].copy()])
    b[1, 2] = -0.0  # another bit pattern, equal as a number
    c = a.copy()
    c[1, 2] = 0.0
    assert program.same_bytes([c], [c.copy()]) and not program.same_bytes([b], [c])
    assert not program.same_bytes([a], [a + 1]) and not program.same_bytes([a], [])
    assert not program.same_bytes([a], [a[:1]])  # another size
    assert not program.same_bytes([a.T], [a.T.copy()])  # not C-contiguous: fold again


def test_outputs_are_fresh_and_the_arena_reuses_memory():
    plan = _eval_plan(resnet_small())
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28))
    first = plan.forward({"x": x}, mode="eval", outputs=["scores"])
    kept = first["scores"].copy()
    plan.forward({"x": -x}, mode="eval", outputs=["scores"])
    np.testing.assert_array_equal(first["scores"], kept)
    (prog,) = plan.executor.programs.values()
    arrays = prog._arena(3)
    bases = {id(a.base) for a in arrays.values()}
    assert len(bases) < len(arrays)  # dead values' buffers reused
    total = sum(a.nbytes for a in arrays.values())
    assert sum({id(a.base): a.base.nbytes for a in arrays.values()}.values()) < total


def test_intermediate_outputs_keep_their_own_values():
    """Asking for a conv's value that a join would take in: it is materialised as it is."""
    plan = _eval_plan(resnet_small())
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28))
    outs = ["block1.conv2", "block1.relu2", "scores"]
    g = resnet_small()
    plan = dagnet.compile(g, dtype="float64", mode="eval", outputs=outs, params=plan.params,
                          state=plan.state)
    _close(*_both(plan, {"x": x}, outputs=outs), 1e-12)


def test_fold_is_batchnorm_after_the_conv():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    gamma, beta, mean = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)
    var = rng.uniform(0.5, 2, 4)
    y = ref.conv_forward(x, w, b, (1, 1), (1, 1))
    c = (slice(None), None, None)
    want = gamma[c] * (y - mean[c]) / np.sqrt(var[c] + 1e-5) + beta[c]
    wf, bf = fold(w, b, gamma, beta, mean, var, 1e-5, np.float64)
    np.testing.assert_allclose(ref.conv_forward(x, wf, bf, (1, 1), (1, 1)), want, rtol=1e-12, atol=1e-12)


# -- the direct kernel's epilogue ------------------------------------------------------------
ISAS = list(range(direct.ISA + 1)) if direct._ext is not None else []
SHAPES = [((3, 16, 12, 12), (16, 16, 3, 3), (1, 1), (1, 1)),
          ((2, 16, 12, 12), (32, 16, 3, 3), (2, 2), (1, 1)),
          ((2, 2, 11, 10), (7, 2, 5, 5), (2, 3), (2, 1)),
          ((1, 3, 6, 28), (5, 3, 3, 3), (1, 1), (1, 1))]  # rows of 28: AVX-512's read-out too


def _epilogue(x, w, b, stride, pad, res, relu, threads=kernels.NUM_THREADS, pool=None, parts=1):
    dtype = x.dtype
    n, f = x.shape[0], w.shape[0]
    geo = direct.geometry(x.shape[1:], w.shape, stride, pad, direct._ext.lanes(direct.ISA, dtype == np.float64))
    ho, wo = geo.ho, geo.wo
    if pool is not None:
        ho, wo = (geo.ho - pool[0]) // pool[2] + 1, (geo.wo - pool[1]) // pool[3] + 1
        pool = (geo.ho, geo.wo, *pool)
    out = np.empty((n, f, ho, wo), dtype)
    t = max(1, threads)
    direct._ext.forward(x, np.empty((n, geo.size), dtype), geo.slot, geo.off, *direct.packed(w, b, dtype),
                        np.empty((t, f * geo.qr), dtype), out, *stride, *pad, geo.hq, geo.wq, geo.qr,
                        direct.ISA, t, res, relu, pool, parts)
    return out


def _reference_epilogue(x, w, b, stride, pad, res, relu, pool=None):
    """The loop reference: conv, + res, max(., 0), then the max of each pool window, element
    by element (a NaN wins its window)."""
    y = ref.conv_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride, pad)
    z = np.empty_like(y)
    for i in np.ndindex(y.shape):
        v = y[i] + (res[i] if res is not None else 0.0)
        z[i] = 0.0 if relu and v < 0 else v
    if pool is None:
        return z
    kh, kw, sh, sw = pool
    n, f, h, w_ = z.shape
    out = np.empty((n, f, (h - kh) // sh + 1, (w_ - kw) // sw + 1))
    for i in np.ndindex(out.shape):
        win = z[i[0], i[1], i[2] * sh:i[2] * sh + kh, i[3] * sw:i[3] * sw + kw]
        out[i] = np.nan if np.isnan(win).any() else win.max()
    return out


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("residual,relu", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES)
def test_direct_epilogue_matches_the_loop_reference(x_shape, w_shape, stride, pad, residual,
                                                     relu, dtype, tol, isa, monkeypatch):
    monkeypatch.setattr(direct, "ISA", isa)
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, w_shape[:1]))
    y = ref.conv_forward(x, w, b, stride, pad)
    res = rng.standard_normal(y.shape).astype(dtype) if residual else None
    got = _epilogue(x, w, b, stride, pad, res, relu)
    want = _reference_epilogue(x, w, b, stride, pad, res, relu)
    assert got.dtype == dtype and np.abs(got - want).max() <= tol * max(1, np.abs(want).max())
    if relu:
        assert (got >= 0).all() and (got == 0).any()


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("pool", [(2, 2, 2, 2), (3, 2, 3, 2), (1, 1, 1, 1), (2, 2, 3, 3)])
@pytest.mark.parametrize("residual", [False, True])
def test_direct_pooled_epilogue_matches_the_loop_reference(pool, residual, dtype, tol, isa,
                                                            monkeypatch):
    monkeypatch.setattr(direct, "ISA", isa)
    rng = np.random.default_rng(1)
    x_shape, w_shape, stride, pad = ((3, 4, 13, 12), (9, 4, 3, 3), (1, 1), (0, 1))
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, w_shape[:1]))
    x[1, 2, 4, 4] = np.nan  # a NaN wins its windows, relu keeps it
    y = ref.conv_forward(x, w, b, stride, pad)
    res = rng.standard_normal(y.shape).astype(dtype) if residual else None
    got = _epilogue(x, w, b, stride, pad, res, True, pool=pool)
    want = _reference_epilogue(x, w, b, stride, pad, res, True, pool)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.isnan(want).any() and ok.any()
    assert np.abs(got[ok] - want[ok]).max() <= tol * max(1, np.abs(want[ok]).max())


#: convs whose output rows take fewer vectors than the grid (direct.h dc_gemm_rows): LeNet's
#: conv2 (8 x 8 outputs on a grid 12 wide) and conv1 (24 x 24 on 28), and rows of 15 (a
#: vector's worth and a part: the last vector overlaps the one before)
ROWS_SHAPES = [((3, 20, 12, 12), (50, 20, 5, 5), (1, 1), (0, 0)),
               ((2, 1, 28, 28), (20, 1, 5, 5), (1, 1), (0, 0)),
               ((3, 3, 17, 21), (6, 3, 5, 7), (1, 1), (0, 0)),
               # rows of whole 16-float vectors (set_rows 3): tiles of 3, 2 and 1 such pairs
               ((2, 3, 8, 32), (10, 3, 3, 3), (1, 1), (1, 1)),
               ((2, 5, 5, 16), (12, 5, 3, 3), (1, 1), (1, 1))]


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("pool,threads,parts", [(None, 2, 1), ((2, 2, 2, 2), 2, 1),
                                                ((2, 2, 2, 2), 3, 4), (None, 2, 2)])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", ROWS_SHAPES)
def test_output_rows_alone_give_the_grids_numbers(x_shape, w_shape, stride, pad, pool, threads,
                                                   parts, dtype, tol, isa, monkeypatch):
    """The forward computing the output rows alone (on AVX-512 two 8-float vectors to a
    register) gives the whole grid's values bitwise, and the loop reference's."""
    monkeypatch.setattr(direct, "ISA", isa)
    rng = np.random.default_rng(2)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, w_shape[:1]))
    x = x[:1] if parts > 1 else x
    got = {}
    was = direct._ext.set_rows(0)
    try:
        for mode in (0, 1, 2, 3):  # the grid, the rows alone, in pairs on AVX-512, whole
            direct._ext.set_rows(mode)
            got[mode] = _epilogue(x, w, b, stride, pad, None, True, threads=threads, pool=pool,
                                  parts=parts)
    finally:
        direct._ext.set_rows(was)
    for mode in (1, 2, 3):
        np.testing.assert_array_equal(got[mode], got[0])
    got = got[3]
    want = _reference_epilogue(x, w, b, stride, pad, None, True, pool and pool[:4])
    assert np.abs(got - want).max() <= tol * max(1, np.abs(want).max())


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
@pytest.mark.parametrize("rows", [0, 1, 2, 3])
def test_output_rows_alone_leave_the_grids_extra_columns_unwritten(rows):
    """With rows alone, the grid's columns past Wo are never computed (the scratch keeps what
    it held there); the whole grid writes them."""
    x_shape, w_shape, stride, pad = ROWS_SHAPES[0]
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, w_shape, w_shape[:1]))
    geo = direct.geometry(x.shape[1:], w.shape, stride, pad, direct._ext.lanes(direct.ISA, False))
    grid = np.full((1, w.shape[0] * geo.qr), np.nan, np.float32)
    out = np.empty((len(x), w.shape[0], geo.ho, geo.wo), np.float32)
    was = direct._ext.set_rows(rows)
    try:
        direct._ext.forward(x, np.empty((len(x), geo.size), np.float32), geo.slot, geo.off,
                            *direct.packed(w, b, np.float32), grid, out, *stride, *pad, geo.hq,
                            geo.wq, geo.qr, direct.ISA, 1)
    finally:
        direct._ext.set_rows(was)
    rows_of = grid[0, :geo.ho * geo.wq].reshape(geo.ho, geo.wq)
    assert not np.isnan(rows_of[:, :geo.wo]).any()
    assert np.isnan(rows_of[:, geo.wo:]).all() == bool(rows)


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
def test_overlapping_pool_windows_are_refused():
    x, w, b = np.zeros((1, 2, 8, 8)), np.zeros((3, 2, 3, 3)), np.zeros(3)
    with pytest.raises(ValueError, match="pool"):
        _epilogue(x, w, b, (1, 1), (1, 1), None, True, pool=(3, 3, 1, 1))


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
@pytest.mark.parametrize("pool", [None, (2, 2, 2, 2)])
def test_direct_epilogue_bitwise_same_for_any_thread_count_and_parts(pool):
    rng = np.random.default_rng(0)
    x_shape, w_shape, stride, pad = SHAPES[0]
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, w_shape, w_shape[:1]))
    outs = [_epilogue(x[:n], w, b, stride, pad, None, True, threads=t, pool=pool, parts=p)
            for n in (3, 1) for t, p in ((1, 1), (2, 1), (3, 1), (2, 2), (3, 4))]
    for o in outs[1:5]:
        np.testing.assert_array_equal(outs[0], o)
    for o in outs[6:]:
        np.testing.assert_array_equal(outs[5], o)
    np.testing.assert_array_equal(outs[0][:1], outs[5])


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
def test_direct_forward_runs_no_more_threads_than_jobs():
    # one sample, one part: one job, so one grid row serves any thread count (a team larger
    # than the jobs would only wake threads with nothing to do); two parts need two rows
    rng = np.random.default_rng(0)
    _, w_shape, stride, pad = SHAPES[0]
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((1, 16, 12, 12), w_shape, w_shape[:1]))
    geo = direct.geometry(x.shape[1:], w.shape, stride, pad, direct._ext.lanes(direct.ISA, False))
    want = _epilogue(x, w, b, stride, pad, None, True, threads=1)

    def run(threads, parts, rows):
        out = np.empty_like(want)
        direct._ext.forward(x, np.empty((1, geo.size), np.float32), geo.slot, geo.off,
                            *direct.packed(w, b, np.float32), np.empty((rows, 16 * geo.qr), np.float32),
                            out, *stride, *pad, geo.hq, geo.wq, geo.qr, direct.ISA, threads, None,
                            True, None, parts)
        return out
    np.testing.assert_array_equal(run(4, 1, 1), want)
    np.testing.assert_array_equal(run(2, 2, 2), want)
    with pytest.raises(ValueError, match="buffers"):
        run(2, 2, 1)
    with pytest.raises(ValueError, match="parts"):
        run(2, 0, 2)


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_filters_run_by_the_helpers_bitwise_as_one_thread(dtype):
    # one sample, its filter tiles shared by the caller and the spinning helpers (helpers.h),
    # many times (the items land on different threads each time): the numbers do not change
    rng = np.random.default_rng(2)
    x_shape, w_shape, stride, pad = (1, 16, 12, 12), (50, 16, 3, 3), (1, 1), (1, 1)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, w_shape[:1]))
    res = rng.standard_normal((1, 50, 12, 12)).astype(dtype)
    before = direct._ext.helper_counts()
    for pool, r in ((None, res), ((2, 2, 2, 2), None)):
        want = _epilogue(x, w, b, stride, pad, r, True, threads=1, pool=pool)
        for threads in (2, 3, 2):
            for _ in range(20):
                np.testing.assert_array_equal(
                    _epilogue(x, w, b, stride, pad, r, True, threads=threads, pool=pool, parts=2), want)
    after = direct._ext.helper_counts()
    assert after["with_helpers"] + after["alone"] - before["with_helpers"] - before["alone"] == 120


@pytest.mark.skipif(direct._ext is None or not hasattr(__import__("os"), "fork"),
                    reason="direct kernels not built, or no fork")
def test_a_forked_child_starts_its_own_helpers():
    import multiprocessing
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((1, 8, 10, 10), (24, 8, 3, 3), (24,)))
    want = _epilogue(x, w, b, (1, 1), (1, 1), None, True, threads=2, parts=2)  # helpers started
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply(_epilogue, (x, w, b, (1, 1), (1, 1), None, True), {"threads": 2, "parts": 2})
    np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
def test_direct_epilogue_bitwise_same_for_any_thread_count():
    rng = np.random.default_rng(0)
    x_shape, w_shape, stride, pad = SHAPES[0]
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, w_shape, w_shape[:1]))
    res = rng.standard_normal((3, 16, 12, 12)).astype(np.float32)
    outs = [_epilogue(x, w, b, stride, pad, res, True, threads=t) for t in (1, 2, 3)]
    outs.append(_epilogue(x, w, b, stride, pad, res, True, threads=2, parts=2))
    for o in outs[1:]:
        np.testing.assert_array_equal(outs[0], o)


def test_nan_passes_relu_as_numpy_keeps_it():
    rng = np.random.default_rng(0)
    x_shape, w_shape, stride, pad = SHAPES[0]
    x, w, b = (rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1]))
    x[0, 0, 5, 5] = np.nan
    got = _epilogue(x, w, b, stride, pad, None, True)
    want = np.maximum(ref.conv_forward(x, w, b, stride, pad), 0)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_a_missing_feed_is_named_as_the_executor_names_it():
    plan = _eval_plan(lenet())
    with pytest.raises(dagnet.errors.FeedError, match="needs feed"):
        plan.forward({"x": np.zeros((1, 1, 28, 28))}, mode="eval")  # the loss needs labels


def test_a_join_of_two_folded_convs_runs_both():
    """A projection shortcut with its own batchnorm: both sides of the add are conv steps
    waiting for the join; one is taken in, the other runs before it."""
    g = dagnet.Graph("two_sided")
    x = g.input("x", (3, 8, 8))
    a = g.batchnorm(g.conv2d(x, 4, 3, pad=1, name="a"), name="a_bn")
    s = g.batchnorm(g.conv2d(x, 4, 1, name="s"), name="s_bn")
    h = g.relu(g.add(a, s, name="join"), name="out")
    g.affine(h, 2, name="scores")
    plan = _eval_plan(g)
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8))
    _close(*_both(plan, {"x": x}, outputs=["scores"]), 1e-12)
    (prog,) = plan.executor.programs.values()
    convs = [i for i in prog.code if i.kind == "conv"]
    assert len(convs) == 2 and sum(c.residual is not None for c in convs) == 1


# -- the head: global_avg_pools and their concat (a "gap" instruction) -------------------------
def _reference_gap_concat(srcs, pooled):
    """The loop reference: each part's mean over H, W (in float64), or the part as it is."""
    cols = []
    for a, p in zip(srcs, pooled):
        n, c = a.shape[:2]
        part = np.empty((n, c))
        for i in np.ndindex(n, c):
            part[i] = sum(float(v) for v in a[i].ravel()) / a[i].size if p else a[i]
        cols.append(part)
    return np.concatenate(cols, axis=1)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_gap_concat_matches_the_loop_reference(dtype, tol):
    rng = np.random.default_rng(0)
    srcs = [rng.standard_normal(s).astype(dtype) for s in ((3, 4, 5, 6), (3, 2), (3, 3, 1, 7))]
    srcs[1][1, 0] = -0.0  # a copied -0.0 keeps its sign, a NaN stays NaN
    srcs[0][2, 1, 3, 3] = np.nan
    pooled = (True, False, True)
    out = np.full((3, 9), 7.0, dtype)
    calls.gap_concat(srcs, pooled, out)
    want = _reference_gap_concat(srcs, pooled)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.abs(out[ok] - want[ok]).max() <= tol
    assert np.signbit(out[1, 4]) and out[1, 4] == 0
    with pytest.raises(ValueError, match="columns"):
        calls.gap_concat(srcs, pooled, np.empty((3, 10), dtype))
    with pytest.raises(ValueError, match="source 1"):
        calls.gap_concat(srcs, (True, True, True), out)
    with pytest.raises(ValueError, match="source 0"):
        calls.gap_concat([srcs[0].astype(np.float16), *srcs[1:]], pooled, out)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_gap_concat_sums_in_lanes_fixed_by_the_size(dtype, tol):
    """Pools of 28 x 28 and 14 x 14 (resnet_small's head) and 33 values (a lane's tail):
    gap.h's 16 lanes against the loop reference, a sample's means the same bits at any
    batch size and position in the batch (the order depends on H*W alone)."""
    rng = np.random.default_rng(1)
    srcs = [rng.standard_normal(s).astype(dtype) + 3 for s in ((4, 3, 28, 28), (4, 2, 14, 14),
                                                               (4, 2, 3, 11))]
    out = np.empty((4, 7), dtype)
    calls.gap_concat(srcs, (True, True, True), out)
    want = _reference_gap_concat(srcs, (True, True, True))
    assert np.abs(out - want).max() <= tol * np.abs(want).max()
    one = np.empty((1, 7), dtype)
    calls.gap_concat([np.ascontiguousarray(a[2:3]) for a in srcs], (True, True, True), one)
    np.testing.assert_array_equal(one[0], out[2])


def test_a_wanted_pool_is_kept_and_copied_into_the_concat():
    plan = _eval_plan(resnet_small())
    outs = ["gap1", "scores"]
    plan = dagnet.compile(resnet_small(), dtype="float64", mode="eval", outputs=outs,
                          params=plan.params, state=plan.state)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28))
    _close(*_both(plan, {"x": x}, outputs=outs), 1e-12)
    (prog,) = plan.executor.programs.values()
    heads = [(i.name, i.pooled) for i in prog.code if i.kind == "gap"]
    assert heads == [("gap1", (True,)), ("features", (False, True))]


def test_same_sources_looks_the_arrays_up_and_compares_their_bytes():
    params, state = {"w": np.arange(4.0)}, {"bn": {"running_var": np.ones(3)}}
    keys = [("w", None), ("bn", "running_var")]
    snap = [params["w"].copy(), state["bn"]["running_var"].copy()]
    assert program.same_sources(params, state, keys, snap)
    state["bn"]["running_var"][1] = 2.0
    assert not program.same_sources(params, state, keys, snap)
    state["bn"]["running_var"][1] = 1.0
    assert not program.same_sources({}, state, keys, snap)  # a look-up that fails
    assert not program.same_sources(params, {"bn": None}, keys, snap)
    assert not program.same_sources(params, state, keys, snap[:1])


# -- a fully connected layer at a small batch (direct.pyx affine_small, affine.h) -------------
def _reference_affine(x, w, b, relu):
    """The loop reference: each output's sum in float64, + b, 0 for a negative one if relu."""
    n, d = x.shape
    y = np.empty((n, w.shape[1]))
    for i, j in np.ndindex(y.shape):
        v = sum(float(x[i, k]) * float(w[k, j]) for k in range(d)) + float(b[j])
        y[i, j] = 0.0 if relu and v < 0 else v
    return y


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("n,d,m", [(1, 37, 10), (1, 50, 64), (2, 19, 130), (3, 8, 1)])
@pytest.mark.parametrize("relu", [False, True])
def test_affine_small_matches_the_loop_reference(n, d, m, relu, dtype, tol):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((n, d), (d, m), (m,)))
    want = _reference_affine(x, w, b, relu)
    for threads in (1, 2, 3):
        y = np.full((n, m), np.inf, dtype)
        direct._ext.affine_small(x, w, b, y, relu, threads)
        assert np.abs(y - want).max() <= tol * max(1, np.abs(want).max())
    if relu:
        assert (y >= 0).all()


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_small_bitwise_same_for_any_thread_count(dtype):
    # LeNet's fc1 (8 blocks of columns, the last one partial), run many times: the blocks
    # land on different threads each time, the numbers do not change
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((1, 800), (800, 500), (500,)))
    w[3, 7] = np.nan  # a NaN's column stays NaN through relu
    want = np.empty((1, 500), dtype)
    direct._ext.affine_small(x, w, b, want, True, 1)
    assert np.isnan(want[0, 7]) and np.isnan(want).sum() == 1
    for threads in (2, 3, 2):
        for _ in range(20):
            y = np.empty_like(want)
            direct._ext.affine_small(x, w, b, y, True, threads)
            np.testing.assert_array_equal(y, want)


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
def test_affine_small_refuses_arrays_it_cannot_read():
    x, w, b, y = np.zeros((1, 4)), np.zeros((4, 3)), np.zeros(3), np.zeros((1, 3))
    direct._ext.affine_small(x, w, b, y, False, 2)
    for args in ((x.astype(np.float32), w, b, y), (x, w.T.copy().T, b, y), (x, w, b, y[:, :2]),
                 (x, np.zeros((5, 3)), b, y), (x, w, np.zeros(4), y)):
        with pytest.raises(ValueError, match="affine_small"):
            direct._ext.affine_small(*args, False, 2)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        direct._ext.affine_small(x, w, b, y, False, 2)


def test_a_small_batch_runs_the_fully_connected_layers_on_affine_small(monkeypatch):
    plan = _eval_plan(lenet())
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28))
    calls = []
    real = direct._ext.affine_small
    monkeypatch.setattr(direct._ext, "affine_small", lambda *a: calls.append(a[1].shape) or real(*a))
    got = plan.forward({"x": x}, mode="eval", outputs=["scores"])
    assert calls == [(800, 500), (500, 10)]
    monkeypatch.setattr(program, "SMALL_AFFINE", 0)  # numpy's matmul: the same numbers
    plan.executor.programs.clear()
    _close(got, plan.forward({"x": x}, mode="eval", outputs=["scores"]), 1e-12)
    assert len(calls) == 2


# -- the split path bound once (direct_split.pxi SplitConv) -----------------------------------
def _bound(x_shape, w, b, stride, pad, has_res, relu, pool, parts=2, threads=2):
    """(SplitConv, out) of a conv of per-batch input shape x_shape."""
    dtype = w.dtype
    geo = direct.geometry(x_shape[1:], w.shape, stride, pad, direct._ext.lanes(direct.ISA, dtype == np.float64))
    ho, wo = geo.ho, geo.wo
    if pool is not None:
        ho, wo = (geo.ho - pool[0]) // pool[2] + 1, (geo.wo - pool[1]) // pool[3] + 1
        pool = (geo.ho, geo.wo, *pool)
    out = np.empty((x_shape[0], w.shape[0], ho, wo), dtype)
    conv = direct._ext.SplitConv(tuple(x_shape), np.empty((x_shape[0], geo.size), dtype), geo.slot,
                                 geo.off, *direct.packed(w, b, dtype),
                                 np.empty((threads, w.shape[0] * geo.qr), dtype), out, *stride, *pad,
                                 geo.hq, geo.wq, geo.qr, direct.ISA, threads, has_res, relu, pool, parts)
    return conv, out


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("residual,relu,pool", [(True, True, None), (False, False, None),
                                                (False, True, (2, 2, 2, 2)), (True, True, (2, 2, 2, 2))])
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", SHAPES + [  # the fill's stride cases
    ((1, 16, 12, 12), (32, 16, 1, 1), (2, 2), (0, 0)),  # resnet's 1x1 skip: one phase of four
    ((1, 3, 9, 11), (4, 3, 3, 3), (1, 2), (0, 2)),  # odd width, a pad of 2
    ((1, 2, 7, 13), (5, 2, 2, 4), (3, 2), (1, 1)),
    ((1, 4, 10, 20), (6, 4, 3, 3), (2, 1), (2, 0))])  # rows of 20: whole vectors and a tail
def test_split_conv_bound_once_is_forward_bitwise(x_shape, w_shape, stride, pad, residual, relu,
                                                   pool, dtype):
    rng = np.random.default_rng(4)
    x_shape = (1, *x_shape[1:])
    w, b = (rng.standard_normal(s).astype(dtype) for s in (w_shape, w_shape[:1]))
    conv, out = _bound(x_shape, w, b, stride, pad, residual, relu, pool)
    for seed in range(3):  # new inputs into the same buffers
        x = np.random.default_rng(seed).standard_normal(x_shape).astype(dtype)
        y = ref.conv_forward(x, w, b, stride, pad)
        res = np.random.default_rng(seed + 9).standard_normal(y.shape).astype(dtype) if residual else None
        conv(x, res)
        want = _epilogue(x, w, b, stride, pad, res, relu, threads=1, pool=pool)
        np.testing.assert_array_equal(out, want)


@pytest.mark.skipif(direct._ext is None, reason="direct kernels not built")
def test_split_conv_checks_what_it_is_called_with():
    rng = np.random.default_rng(5)
    w, b = rng.standard_normal((8, 3, 3, 3)), rng.standard_normal(8)
    conv, out = _bound((1, 3, 6, 6), w, b, (1, 1), (1, 1), True, True, None)
    x, res = np.zeros((1, 3, 6, 6)), np.zeros((1, 8, 6, 6))
    conv(x, res)
    for bad_x, bad_res in ((x.astype(np.float32), res), (np.zeros((2, 3, 6, 6)), res),
                           (np.zeros((1, 3, 6, 12))[..., ::2], res), (x, None), (x, res[:, :4])):
        with pytest.raises(ValueError, match="SplitConv"):
            conv(bad_x, bad_res)
    plain, _ = _bound((1, 3, 6, 6), w, b, (1, 1), (1, 1), False, True, None)
    with pytest.raises(ValueError, match="without a residual"):
        plain(x, res)
    with pytest.raises(ValueError, match="parts"):
        _bound((1, 3, 6, 6), w, b, (1, 1), (1, 1), False, True, None, parts=1)
    geo = direct.geometry((3, 6, 6), w.shape, (1, 1), (1, 1), direct._ext.lanes(direct.ISA, True))
    with pytest.raises(ValueError, match="buffers"):  # forward's own checks, at binding
        direct._ext.SplitConv((1, 3, 6, 6), np.empty((1, geo.size)), geo.slot, geo.off,
                              *direct.packed(w, b, np.float64), np.empty((1, 8 * geo.qr)), out,
                              1, 1, 1, 1, geo.hq, geo.wq, geo.qr, direct.ISA, 2, False, True, None, 2)


def test_a_wanted_input_is_passed_through_or_named_when_not_fed():
    plan = _eval_plan(lenet())
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28))
    got = plan.forward({"x": x}, mode="eval", outputs=["x", "scores"])
    np.testing.assert_array_equal(got["x"], x)
    with pytest.raises(dagnet.errors.FeedError, match="'y' was asked for"):
        plan.forward({"x": x}, mode="eval", outputs=["y"])
