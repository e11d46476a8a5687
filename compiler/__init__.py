"""The dagnet compiler: one module per pass, each a pure function, and the ExecutionPlan.

    validate -> infer_shapes -> prune -> fuse -> schedule -> plan_backward -> plan_memory
    (-> plan_buckets: the data-parallel gradient allreduce, with compile(bucket_mb=...))

The passes are rows of pipeline.PASSES; meta.META lists what they leave on the graph and
lint.lint checks it between passes.
"""
from dagnet.compiler.autodiff import plan_backward
from dagnet.compiler.buckets import plan_buckets
from dagnet.compiler.feeds import random_feeds
from dagnet.compiler.forward_mode import plan_jvp
from dagnet.compiler.fuse import fuse
from dagnet.compiler.fusion_check import check_fusion
from dagnet.compiler.lint import LintError, lint
from dagnet.compiler.memory import plan_memory
from dagnet.compiler.meta import META, MetaKey
from dagnet.compiler.params import init_params, init_state
from dagnet.compiler.patterns import PATTERNS, Pattern
from dagnet.compiler.pipeline import PASSES, Pass, compile, run_passes
from dagnet.compiler.plan import ExecutionPlan, Step
from dagnet.compiler.prune import prune
from dagnet.compiler.schedule import schedule
from dagnet.compiler.shapes import infer_shapes
from dagnet.compiler.validate import validate

__all__ = [
    "ExecutionPlan", "LintError", "META", "MetaKey", "PASSES", "PATTERNS", "Pass", "Pattern",
    "Step", "check_fusion", "compile", "fuse", "infer_shapes", "init_params", "init_state",
    "lint", "plan_backward", "plan_jvp", "plan_buckets", "plan_memory", "prune", "random_feeds", "run_passes", "schedule",
    "validate",
]
