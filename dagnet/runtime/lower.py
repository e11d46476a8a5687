"""Lowering an eval plan's steps to the instructions of an inference program (program.py).

    instructions(plan, wanted) -> [Instr]      what to run, in order, and what each reads

A conv step (conv2d, alone or with batchnorm and/or relu after it) becomes one "conv"
instruction whose batchnorm is folded into the weights: in eval mode batchnorm is the affine
map y = s * (conv(x) + b - mean) + beta with s = gamma / sqrt(var + eps) per channel, so
conv with weights s * w and bias s * (b - mean) + beta gives the same numbers (to rounding)
with no pass of its own. A residual join right after it (a fused_elementwise step
add(conv's value, skip) -> relu -> single-input members such as global_avg_pool) is taken
into the conv's output pass: + skip, relu, while the values are in cache; a 1x1 conv that
makes the skip (ResNet's projection shortcut, the chain's anchor) runs first as an
instruction of its own. A fully connected layer whose weights are params (affine, alone or
with relu) becomes an "affine" instruction: its matrix product, bias and relu without the op's
per-call checks (the plan checked the shapes once; the program checks the params' dtype and
shape). A global_avg_pool of a conv's value, and a concat of such pools (a ResNet's head),
becomes a "gap" instruction: the means written side by side into the concat's value. Every
other step is run as the executor runs it ("step"), and the members after a
join as their ops' forward ("member").
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dagnet.ops import get_op

#: the steps an "affine" instruction takes: a fully connected layer (and its relu), whose op's
#: forward checks dtypes and shapes again on every call (~15 us, a batch-1 GEMV's own time)
AFFINE_STEPS = ("affine", "affine+relu")

#: the fused patterns (and the plain op) a "conv" instruction takes
CONV_STEPS = ("conv2d", "conv2d+relu", "conv2d+batchnorm", "conv2d+batchnorm+relu",
              "conv2d+relu+max_pool2d", "conv2d+batchnorm+relu+max_pool2d")


@dataclass
class Instr:
    """One call of the program: kind "conv", "affine", "gap", "step" or "member"; it writes value `name`
    (per-example `shape` if batched) and reads the values `reads` (data, not folded params)."""

    kind: str
    name: str
    reads: tuple
    shape: tuple
    step: object = field(repr=False)  # the plan step it comes from (for errors)
    batched: bool = True
    # conv (and affine): the param names (w, b), the batchnorm's (gamma, beta, state key, eps) or None,
    # conv2d's attrs read, the skip value added before relu, relu
    params: tuple = ()
    bn: tuple | None = None
    conv: dict | None = None
    residual: str | None = None
    relu: bool = False
    pool: dict | None = None  # max_pool2d's attrs read, for a pool after relu
    pooled: tuple = ()  # gap: per value read, whether it is averaged over H, W (else copied)
    x_shape: tuple = ()
    # member: the op and its attrs; every input (data and params) in `ins`
    op: object = field(default=None, repr=False)
    attrs: dict | None = field(default=None, repr=False)
    ins: tuple = ()

    @property
    def aliases(self) -> bool:
        """Whether its value may be a view of (or be) an input: a step or member whose op says
        so, or takes no out= (it may hand back an input as it is)."""
        return self.kind not in ("conv", "affine", "gap") and \
            (self.op.may_alias or not self.op.supports_out)


def fold(w, b, gamma, beta, mean, var, eps, dtype):
    """Conv weights and bias with an eval-mode batchnorm after them folded in:
    (w (F, C, kh, kw), b (F,)) -> (s * w, s * (b - mean) + beta), s = gamma / sqrt(var + eps),
    computed in float64 and rounded once to dtype."""
    s = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    wf = (np.asarray(w, np.float64) * s.reshape(-1, 1, 1, 1)).astype(dtype)
    bf = (s * (np.asarray(b, np.float64) - mean) + beta).astype(dtype)
    return wf, bf


def _members(step) -> list:
    return step.attrs.get("members", [{"op": step.op_name, "attrs": step.attrs}])


def _conv_instr(step, shapes) -> Instr:
    members = _members(step)
    ops = [m["op"] for m in members]
    conv = get_op("conv2d").read_attrs(members[0]["attrs"])
    bn = None
    if "batchnorm" in ops:
        a = members[ops.index("batchnorm")]["attrs"]
        bn = (step.inputs[3], step.inputs[4], step.state_key, float(a.get("eps", 1e-5)))
    pool = get_op("max_pool2d").read_attrs(members[-1]["attrs"]) if ops[-1] == "max_pool2d" else None
    return Instr("conv", step.name, (step.inputs[0],), step.shape, step, params=tuple(step.inputs[1:3]),
                 bn=bn, conv=conv, relu="relu" in ops, pool=pool, x_shape=shapes[step.inputs[0]])


def _foldable(plan, step) -> bool:
    """Whether a conv step's weights (and batchnorm's) are params and its statistics are in
    the plan's state: what the program folds once (a weight fed or computed is not)."""
    return all(v in plan.params for v in step.inputs[1:]) and (
        "batchnorm" not in step.op_name or step.state_key in plan.state)


def _join(step, conv_name, shape, params):
    """(anchor record or None, the skip's step input or None, relu, tail records) if the
    fused_elementwise step adds conv_name's value (per-example shape) to a skip of the same
    shape, then maybe relu, then members of one input each (an anchor conv's weights among
    params); None otherwise."""
    if step.op_name != "fused_elementwise":
        return None
    rec = step.attrs["members"]
    anchor = rec[0] if rec[0]["op"] == "conv2d" and rec[0]["arity"] == 3 else None
    k = 1 if anchor else 0
    if len(rec) <= k or rec[k]["op"] != "add" or rec[k]["arity"] != 2 \
            or tuple(rec[k]["shape"]) != tuple(shape) or (anchor and anchor["shape"] != rec[k]["shape"]):
        return None
    if anchor:  # the anchor's output enters add; add's other operand is step input 3
        if len(step.inputs) < 4 or step.inputs[3] != conv_name or \
                not all(v in params for v in step.inputs[1:3]):
            return None
        skip = None
    else:
        if conv_name not in step.inputs[:2] or step.inputs[0] == step.inputs[1]:
            return None
        skip = step.inputs[1] if step.inputs[0] == conv_name else step.inputs[0]
    relu = len(rec) > k + 1 and rec[k + 1]["op"] == "relu"
    tail = rec[k + 1 + relu:]
    if any(r["arity"] != 1 for r in tail) or len(step.inputs) != (4 if anchor else 2):
        return None
    return anchor, skip, relu, tail


def instructions(plan, steps, keep) -> list[Instr]:
    """The program of `steps` (plan.steps_for(wanted), in order); keep: values that must be
    materialised (the wanted ones)."""
    shapes = {n: tuple(s["shape"]) for n, s in plan.input_specs.items()}
    shapes.update((s.name, s.shape) for s in steps)
    batched = {n for n, s in plan.input_specs.items() if s.get("batched", True)}
    batched.update(s.name for s in steps if s.batched)
    users: dict = {}
    for s in steps:
        for v in set(s.inputs):
            users.setdefault(v, []).append(s)
    deferred = {}  # conv step name -> its Instr, waiting for the join that takes it in
    out = []
    for step in steps:
        if step.op_name in CONV_STEPS and step.batched and len(step.inputs) == \
                (5 if "batchnorm" in step.op_name else 3) and _foldable(plan, step):
            ins = _conv_instr(step, shapes)
            only = users.get(step.name, [])
            join = _join(only[0], step.name, step.shape, plan.params) if len(only) == 1 else None
            if not ins.relu and step.name not in keep and join and \
                    (join[1] is None or join[1] in batched and shapes[join[1]] == step.shape):
                deferred[step.name] = ins
            else:
                out.append(ins)
            continue
        if step.op_name in AFFINE_STEPS and step.batched and len(step.inputs) == 3 and \
                all(v in plan.params for v in step.inputs[1:]):
            out.append(Instr("affine", step.name, (step.inputs[0],), step.shape, step,
                             params=tuple(step.inputs[1:]), relu=step.op_name == "affine+relu",
                             op=step.op, attrs=step.attrs, ins=tuple(step.inputs)))
            continue
        takes = [v for v in step.inputs
                 if v in deferred and _join(step, v, shapes[v], plan.params)]
        for v in dict.fromkeys(step.inputs):  # a deferred conv this step does not take in
            if v in deferred and v not in takes[:1]:  # (both sides of a join: one runs first)
                out.append(deferred.pop(v))
        if takes:
            conv_name = takes[0]
            join = _join(step, conv_name, shapes[conv_name], plan.params)
            out += _lower_join(step, deferred.pop(conv_name), join, shapes)
            continue
        out.append(Instr("step", step.name, tuple(step.inputs), step.shape, step,
                         batched=step.batched, op=step.op, attrs=step.attrs, ins=tuple(step.inputs)))
    return _heads(out + list(deferred.values()), keep)


def _heads(code: list, keep) -> list:
    """code with each global_avg_pool of a conv instruction's value as a "gap" instruction,
    and each concat of per-example vectors (axis 1) whose inputs are such pools (read by the
    concat alone) or vectors made by affine and gap instructions as one "gap" instruction of
    all the parts: a ResNet's head in one call, no pooled value written before it is copied."""
    made = {i.name: i for i in code}
    readers: dict = {}
    for i in code:
        for v in set(i.reads):
            readers[v] = readers.get(v, 0) + 1
    out = []
    for ins in code:
        if ins.kind in ("step", "member") and ins.op.name == "global_avg_pool" and ins.batched \
                and len(ins.reads) == 1 and getattr(made.get(ins.reads[0]), "kind", "") == "conv":
            ins = made[ins.name] = Instr("gap", ins.name, ins.reads, ins.shape, ins.step, pooled=(True,))
        elif ins.kind == "step" and ins.op.name == "concat" and ins.batched and len(ins.shape) == 1 \
                and ins.op.read_attrs(ins.attrs)["axis"] in (1, -1):
            parts = _vectors(ins, made, readers, keep)
            if parts is not None:
                drop = {id(made[v]) for v in ins.reads if made[v].kind == "gap" and
                        readers[v] == 1 and v not in keep}
                out = [i for i in out if id(i) not in drop]
                ins = made[ins.name] = Instr("gap", ins.name, tuple(v for v, _ in parts), ins.shape,
                                             ins.step, pooled=tuple(p for _, p in parts))
        out.append(ins)
    return out


def _vectors(concat, made, readers, keep) -> list | None:
    """[(value, pooled)] the parts of a concat instruction in a "gap" instruction: a gap read
    by it alone gives its own parts, another affine or gap instruction's vector is copied;
    None if an input is neither."""
    parts = []
    for v in concat.reads:
        p = made.get(v)
        if p is None or p.kind not in ("gap", "affine") or not p.batched or len(p.shape) != 1:
            return None
        if p.kind == "gap" and readers[v] == 1 and v not in keep:
            parts += zip(p.reads, p.pooled)
        else:
            parts.append((v, False))
    return parts


def _lower_join(step, conv: Instr, join, shapes) -> list[Instr]:
    """The join step as: [its anchor conv], the deferred conv with the skip and relu in its
    output pass, [its tail members]."""
    anchor, skip, relu, tail = join
    out = []
    if anchor is not None:
        skip = step.name + "#skip"
        out.append(Instr("conv", skip, (step.inputs[0],), tuple(anchor["shape"]), step,
                         params=tuple(step.inputs[1:3]),
                         conv=get_op("conv2d").read_attrs(anchor["attrs"]),
                         x_shape=shapes[step.inputs[0]]))
    value = step.name if not tail else step.name + "#join"
    conv.name, conv.residual, conv.relu, conv.reads = value, skip, relu, conv.reads + (skip,)
    conv.step = step
    out.append(conv)
    for k, r in enumerate(tail):
        name = step.name if k == len(tail) - 1 else f"{step.name}#{k}"
        out.append(Instr("member", name, (value,), tuple(r["shape"]), step, batched=r["batched"],
                         op=get_op(r["op"]), attrs=r["attrs"], ins=(value,)))
        value = name
    return out
