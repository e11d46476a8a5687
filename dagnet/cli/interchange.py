"""`dagnet import` and `export`: ONNX in and out."""
from __future__ import annotations

import os
import sys

from dagnet.cli.common import MODEL_HELP, UsageError, load_onnx, resolve_model
from dagnet.cli.outputs import output_file
from dagnet.errors import DagnetError


def cmd_import(args) -> int:
    from dagnet.spec import save_spec
    from dagnet.train.checkpoint import save_checkpoint

    output_file(args.output)
    shapes = {}
    for item in args.input_shape or []:
        name, _, dims = item.partition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shapes[name] = ()
        if not name or not shapes[name] or min(shapes[name]) < 1:
            raise UsageError(f"--input-shape takes NAME=C,H,W with positive sizes (the "
                             f"per-example shape, no batch dimension), got '{item}'")
    try:
        m = load_onnx(args.model, shapes)
    except DagnetError as e:
        if shapes and "input_shapes" in str(e):  # say it in the command's own terms
            raise UsageError(str(e).replace("input_shapes", "--input-shape")) from None
        raise
    out = args.output or os.path.splitext(os.path.basename(args.model))[0] + ".yaml"
    save_spec(m.graph, out)
    weights = os.path.splitext(out)[0] + ".weights.npz"
    save_checkpoint(weights, params=m.params, state=m.state, optimizer={}, solver={},
                    spec=m.graph.to_spec())
    print(f"wrote {out} ({len(m.graph)} nodes) and {weights} ({len(m.params)} params); "
          f"fine-tune with: dagnet train {out} --weights {weights} ...")
    return 0


def cmd_export(args) -> int:
    from dagnet import onnx

    output_file(args.output)
    source = resolve_model(args.model)
    plan = source.compile(mode="eval")
    if source.params is None:
        print("note: exporting freshly initialised weights (give a run directory for trained ones)",
              file=sys.stderr)
    out = args.output or "model.onnx"
    onnx.export(plan, out, opset=args.opset)
    print(f"wrote {out}")
    return 0


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
    im = sub.add_parser("import", help="an ONNX model as a spec (YAML/JSON) plus its weights")
    im.add_argument("model", help="a .onnx file")
    im.add_argument("-o", "--output", help="spec file to write (.yaml or .json)")
    im.add_argument("--input-shape", action="append", metavar="NAME=C,H,W",
                    help="fix a symbolic input shape (repeatable)")
    im.set_defaults(func=cmd_import)

    ex = sub.add_parser("export", help="a model, spec or trained run as ONNX")
    ex.add_argument("model", help=MODEL_HELP)
    ex.add_argument("-o", "--output", help="the .onnx file to write")
    ex.add_argument("--opset", type=int, default=17, help="the ONNX opset version to write")
    ex.set_defaults(func=cmd_export)
