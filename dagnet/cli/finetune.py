"""`dagnet train`'s starting point: the weights it starts from (--weights, or with the
fine-tuning flags the model's own: an .onnx file's or a run's), a fresh classifier for the
data's classes (--replace-head) and the params frozen up to a node (--freeze)."""
from __future__ import annotations

from dataclasses import dataclass

from dagnet.cli.common import UsageError, load_onnx
from dagnet.cli.resume import Given
from dagnet.errors import GraphError


@dataclass
class Start:
    """What train compiles: the graph, its starting params and state (None: fresh) and the
    params to freeze."""

    graph: object
    params: dict | None = None
    state: dict | None = None
    freeze: tuple = ()


def add_flags(parser) -> None:
    parser.add_argument("--replace-head", action=Given, type=int, metavar="CLASSES",
                        help="fine-tuning: give the classifier (the last affine or conv layer "
                             "before the scores) CLASSES outputs and fresh weights; the other "
                             "layers keep the model's own weights (an .onnx file's or a run's) "
                             "or --weights")
    parser.add_argument("--freeze", action=Given, metavar="NODE",
                        help="fine-tuning: freeze the params of NODE and of every layer before "
                             "it (no gradient, no update; marked in the plan and the diagram)")


def wanted(args) -> bool:
    return _flag(args, "replace_head") is not None or _flag(args, "freeze") is not None


def _flag(args, name: str):
    return getattr(args, name, None)  # `dagnet tune` builds train's arguments itself


def check_flags(args) -> None:
    if _flag(args, "replace_head") is not None and args.replace_head < 1:
        raise UsageError(f"--replace-head must be an integer >= 1 (the number of classes), "
                         f"got {args.replace_head}")


def start(args, source, graph, shape: tuple, classes: int, dtype: str) -> Start:
    """The starting point of `dagnet train` (see the module docstring). `graph` is source's
    graph with a loss; shape and classes are the data's."""
    from dagnet.cli.common import with_loss
    from dagnet.models.finetune import params_up_to, replace_head

    params, state = _weights(args, source)
    if wanted(args) and args.model.endswith(".onnx") and _input_shape(graph) != tuple(shape):
        # an imported net sized for other images (e.g. 224x224): read it again at the data's
        m = load_onnx(args.model, {_input_name(graph): tuple(shape)})
        graph, params, state = with_loss(m.graph), m.params, m.state
    if wanted(args) and _input_shape(graph) != tuple(shape):
        raise UsageError(f"{args.model} takes inputs of shape {_input_shape(graph)} but the "
                         f"{args.data} images are {tuple(shape)}; fine-tune on data of its shape")
    fresh = []
    if _flag(args, "replace_head") is not None:
        if args.replace_head < classes:
            raise UsageError(f"--replace-head {args.replace_head}: the {args.data} labels go up "
                             f"to {classes - 1}, so the head needs at least {classes} outputs")
        try:
            graph, fresh = replace_head(graph, args.replace_head)
        except GraphError as e:
            raise UsageError(f"--replace-head: {e}") from None
    if params is not None:
        params = _fill(graph, {k: v for k, v in params.items() if k not in fresh}, fresh, args)
    freeze = ()
    if _flag(args, "freeze") is not None:
        try:
            freeze = tuple(params_up_to(graph, args.freeze))
        except GraphError as e:
            raise UsageError(f"--freeze: {e}") from None
        trainable = [n.name for n in graph.params if n.name not in freeze]
        if not trainable:
            raise UsageError(f"--freeze {args.freeze} freezes every param of {graph.name}: "
                             f"nothing would train; name an earlier layer")
        if params is None and _flag(args, "replace_head") is None:
            print("note: --freeze on fresh weights: the frozen layers stay random "
                  "(give --weights, an .onnx file or a run to fine-tune)")
    if params is not None:
        params = {k: v.astype(dtype) for k, v in params.items()}
        state = {n: {k: v.astype(dtype) for k, v in st.items()} for n, st in (state or {}).items()}
    return Start(graph, params, state, freeze)


def _weights(args, source):
    """(params, state) to start from: --weights, else with the fine-tuning flags the model's
    own (None for a zoo name or spec file: fresh)."""
    if _flag(args, "weights"):
        from dagnet.train.checkpoint import load_checkpoint

        ck = load_checkpoint(args.weights)
        return dict(ck.params), dict(ck.state)
    if wanted(args) and source.params is not None:
        return dict(source.params), dict(source.state or {})
    return None, None


def _fill(graph, params: dict, fresh: list, args) -> dict:
    """params checked against the graph (as a checkpoint is), plus fresh ones for the new head."""
    from types import SimpleNamespace

    from dagnet.compiler.params import init_params
    from dagnet.train.checkpoint import check_compatible

    if fresh:
        dtype = next(iter(params.values())).dtype if params else "float32"
        new = init_params(graph, args.seed, dtype)
        params = {**params, **{k: new[k] for k in fresh}}
    check_compatible(SimpleNamespace(params=params),
                     {n.name: tuple(n.attrs["shape"]) for n in graph.params})
    return params


def _input_name(graph) -> str:
    return next(n.name for n in graph.inputs if n.attrs.get("dtype", "float32").startswith("float"))


def _input_shape(graph) -> tuple:
    return tuple(graph.node(_input_name(graph)).attrs["shape"])
