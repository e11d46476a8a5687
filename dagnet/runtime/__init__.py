"""The runtime: runs an ExecutionPlan's steps (dagnet.compiler makes the plan).

    executor.py   Executor: the one forward/backward loop and the run's state (hooks per step)
    feeds.py      check_feeds: feeds against the plan's inputs
    profiler.py   Profiler: the executor with each step timed
    nonfinite.py  NonfiniteLocator: the executor with each value checked for NaN/Inf
    members.py    a fused step run member by member (the unfused chain)
"""
from dagnet.runtime.executor import Executor
from dagnet.runtime.feeds import check_feeds
from dagnet.runtime.nonfinite import NonfiniteLocator, locate_nonfinite, nonfinite_kind
from dagnet.runtime.profiler import Profiler, profile

__all__ = ["Executor", "NonfiniteLocator", "Profiler", "check_feeds", "locate_nonfinite",
           "nonfinite_kind", "profile"]
