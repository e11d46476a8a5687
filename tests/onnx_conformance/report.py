"""docs/onnx.md: the table of ONNX ops dagnet supports, generated from the mapping table, ONNX's
op schemas, ONNX's conformance cases and the expected-failures table (which the conformance
tests keep exact, so every case not in it passes).

    .venv/bin/python -m tests.onnx_conformance.regen     # runs the cases, then writes the page
"""
from __future__ import annotations

import collections

import onnx

from dagnet.onnx.mapping import TABLE
from tests.onnx_conformance import harness

TOOL = "python -m tests.onnx_conformance.regen"


def versions(op: str) -> list[int]:
    """The opset versions in which `op` (default domain) changed, oldest first."""
    return sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                   if s.name == op and s.domain == ""})


def attribute_status(op: str, cases: dict, failing: dict) -> str:
    """Each schema attribute of `op`: set by a passing case, only by failing ones, or by none."""
    passing, only_failing = set(), set()
    for name, c in cases.items():
        nodes = c.model.graph.node
        if len(nodes) != 1:
            continue  # a function-expanded case: its nodes are other ops
        (passing if name not in failing else only_failing).update(a.name for a in nodes[0].attribute)
    only_failing -= passing
    names = sorted(onnx.defs.get_schema(op).attributes)
    marks = [f"`{a}` " + ("✓" if a in passing else "✗" if a in only_failing else "–")
             for a in names]
    return ", ".join(marks) or "(none)"


def gaps(op: str, names, failing: dict, model_failures: dict) -> str:
    """The reasons of op's failing node cases and of the models refused at one of its nodes."""
    counts = collections.Counter(failing[n].removeprefix(f"{op}: ") for n in names if n in failing)
    counts.update(f"{r.removeprefix(f'{op}: ')} (models)" for r in model_failures.values()
                  if r.startswith(f"{op}: "))
    return "; ".join(f"{r}: {n}" for r, n in counts.most_common()) or "—"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def op_rows(node_failures: dict, model_failures: dict,
            older_failures: dict) -> tuple[list[str], int, int]:
    rows, ok_all, total_all = [], 0, 0
    exports = {row.onnx for row in TABLE if row.export}
    dagnet_op = {row.onnx: row.op for row in TABLE if row.load}
    for op in harness.declared_ops():
        cases = harness.node_cases(op)
        ok = sum(n not in node_failures for n in cases)
        ok_all, total_all = ok_all + ok, total_all + len(cases)
        target = f"`{dagnet_op[op]}`" if dagnet_op.get(op) else "(renames a value)"
        variants = [k for n, c in cases.items() if n not in node_failures
                    for k in harness.older_opsets(c, op)]
        older = sorted({int(k.rsplit("@", 1)[1]) for k in variants})
        failing_older = sum(k in older_failures for k in variants)
        rows.append(f"| {op} | {target} | {'yes' if op in exports else 'no'} | "
                    f"{', '.join(map(str, versions(op)))} | "
                    f"{', '.join(map(str, older)) or '—'}"
                    f"{f' ({failing_older} of {len(variants)} fail)' if failing_older else ''} | "
                    f"{ok} / {len(cases)} | "
                    f"{attribute_status(op, cases, node_failures)} | "
                    f"{_cell(gaps(op, cases, node_failures, model_failures))} |")
    return rows, ok_all, total_all


def reason_rows(node_failures: dict, model_failures: dict) -> list[str]:
    by_reason = collections.defaultdict(lambda: ([], []))
    for name, r in node_failures.items():
        by_reason[r][0].append(name)
    for name, r in model_failures.items():
        by_reason[r][1].append(name)
    order = sorted(by_reason, key=lambda r: (-len(by_reason[r][0]) - len(by_reason[r][1]), r))
    return [f"| {_cell(r)} | {len(by_reason[r][0])} | {len(by_reason[r][1])} | "
            f"{', '.join(f'`{n}`' for n in (by_reason[r][1] + by_reason[r][0])[:3])} |"
            for r in order]


def markdown(node_failures: dict, model_failures: dict, older_failures: dict) -> str:
    rows, ok, total = op_rows(node_failures, model_failures, older_failures)
    models = harness.model_cases()
    passing_models = [n for n in models if n not in model_failures]
    out = [
        "# ONNX support", "",
        "dagnet reads ONNX models (`dagnet.onnx.load`, `dagnet import`), writes them "
        "(`dagnet.onnx.export`, `dagnet export`) and runs them behind ONNX's backend interface, "
        "the one onnxruntime implements (`import dagnet.onnx.backend as backend; "
        "backend.prepare(model).run(inputs)`).", "",
        f"This page is generated: `{TOOL}` runs ONNX's own conformance cases through "
        "`dagnet.onnx.backend` and writes it with `tests/onnx_conformance/expected_failures.py`; "
        "`tests/onnx_conformance/test_docs.py` checks it is current. "
        f"Generated with onnx {onnx.__version__}.", "",
        f"- **{len(rows)} ONNX ops** are imported (one row each in `dagnet/onnx/mapping.py`).",
        f"- **{ok} of {total}** of ONNX's node conformance cases for those ops pass "
        "(`onnx.backend.test.case.node`, generated in memory, function-expanded variants "
        "included).",
        f"- **{len(passing_models)} of {len(models)}** of the models shipped inside the `onnx` "
        "package (`pytorch-converted`, `pytorch-operator`) import and match their expected "
        "outputs.", "",
        "## How the cases run", "",
        "Each case's model goes through `dagnet.onnx.backend`: imported by `dagnet.onnx.load`, "
        "compiled in eval mode, run, and compared as ONNX's test runner compares (shapes, "
        "dtypes, `rtol`/`atol` of the case: 1e-3 / 1e-7 unless the model says otherwise). "
        "dagnet's values carry a batch axis, so the backend feeds each input's leading "
        "dimension as the batch; that is exact because the importer refuses any op that would "
        "mix examples, and inputs that differ in it or have rank < 2 are refused "
        "(`NoBatchAxisError`). Inputs that the importer reads as weights, biases, statistics or "
        "shapes (node cases feed `Conv`'s `W` as an input) are frozen to the values given, and "
        "never folded: the nodes reading them are dagnet's to run.", "",
        "## What the importer does besides the op table", "",
        "- **Constant folding.** Every node that depends on no data input is evaluated once at "
        "import by ONNX's reference implementation (`onnx.reference`), whatever its op, as "
        "TVM's FoldConstant and onnx-simplifier do: `Constant`, `ConstantOfShape`, weights "
        "transposed or scaled by nodes (torch's bias-free `Linear`), and shape arithmetic. "
        "`Shape` of a data value folds with the batch symbolic (evaluated at two batch sizes), "
        "so torch's `x.view(x.size(0), -1)` chain (`Shape`, `Gather`, `Unsqueeze`, `Concat`) "
        "becomes a `Reshape` keeping the batch; any other use of the batch size is refused "
        "with the value named (`dagnet/onnx/fold.py`).",
        "- **Old opsets.** A model older than opset 7 (Caffe2's exports: `Add` broadcasting by "
        "attribute, `is_test` flags) is converted to opset 7 by `onnx.version_converter`, whose "
        "adapters exist only where the conversion is exact; newer opsets are read as they are.",
        "- **A fixed batch of 1.** When every data input declares a leading 1, a `Reshape` "
        "target's leading 1 is read as the batch, so the model runs at any batch size.",
        "- **Notes.** What the import assumed or converted is listed in `OnnxModel.notes`, one "
        "line each, and `dagnet import` prints them.", "",
        "## Ops", "",
        "Versions: the opsets in which ONNX changed the op; the importer reads them all "
        "(those before 7 through `onnx.version_converter`). "
        "Older opsets run: the passing cases, converted by `onnx.version_converter` to these "
        "older versions of the op (where it has an adapter and the result is valid there), "
        "expecting what onnxruntime computes at that opset (the converter keeps attributes "
        "whose meaning changed, such as `Softmax`'s axis before 13), pass too, except those "
        "counted as failing (listed in `expected_failures.OLDER`). Attributes: ✓ set by a "
        "passing case, ✗ set only by failing cases, – set by no case (its default is what is "
        "tested).", "",
        "| ONNX op | dagnet op | export writes it | versions | older opsets run | "
        "node cases passing | attributes | known gaps: failing cases (models refused at this "
        "op) |",
        "|---|---|---|---|---|---|---|---|",
        *rows, "",
        "## Known gaps", "",
        "Every failing case, by reason (the expected-failures table). `needs X` names ONNX ops "
        "not yet imported; `needs unbatched values` cases wait for values without a batch axis.",
        "",
        "| reason | node cases | models | for example |", "|---|---|---|---|",
        *reason_rows(node_failures, model_failures), "",
        "## Models shipped with onnx", "",
        f"Matching ({len(passing_models)}): " + ", ".join(f"`{n}`" for n in passing_models)
        + ".", "",
        "Failing, with the reason:", "",
        "| model | reason |", "|---|---|",
        *[f"| `{n}` | {_cell(r)} |" for n, r in model_failures.items()], "",
    ]
    return "\n".join(out)
