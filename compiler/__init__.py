"""The dagnet compiler: one module per pass, each a pure function, and the ExecutionPlan.

    validate -> infer_shapes -> prune -> fuse -> schedule -> plan_backward -> plan_memory
    (-> plan_buckets: the data-parallel gradient allreduce, with compile(bucket_mb=...))
"""
from dagnet.compiler.autodiff import plan_backward
from dagnet.compiler.buckets import plan_buckets
from dagnet.compiler.fuse import fuse
from dagnet.compiler.memory import plan_memory
from dagnet.compiler.patterns import PATTERNS, Pattern
from dagnet.compiler.pipeline import check_fusion, compile, init_params, run_passes
from dagnet.compiler.plan import ExecutionPlan, Step
from dagnet.compiler.prune import prune
from dagnet.compiler.schedule import schedule
from dagnet.compiler.shapes import infer_shapes
from dagnet.compiler.validate import validate

__all__ = [
    "ExecutionPlan", "PATTERNS", "Pattern", "Step", "check_fusion", "compile", "fuse",
    "infer_shapes", "init_params", "plan_backward", "plan_buckets", "plan_memory", "prune",
    "run_passes",
    "schedule", "validate",
]
