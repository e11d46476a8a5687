"""Every user-facing failure in dagnet is a DagnetError subclass.

Messages say what went wrong, where (node, op, key path, step) and the fix; see docs/errors.md.
"""


class DagnetError(Exception):
    """Base class of all dagnet errors."""


class SpecError(DagnetError):
    """A YAML/JSON spec is malformed; the message names the key path."""


class GraphError(DagnetError):
    """The declared graph is structurally wrong (names, arity, dangling inputs)."""


class CycleError(GraphError):
    """The graph has a cycle; the message prints it (`cycle: a -> b -> a`)."""


class UnknownOpError(GraphError):
    """A node names an op that is not registered."""


class ShapeError(DagnetError):
    """Shapes do not fit: the message names the node, the op, the shapes and what would fit."""


class DTypeError(DagnetError):
    """An array has a dtype the op cannot take (e.g. integers where floats are needed)."""


class FeedError(DagnetError):
    """A feed given to a plan at run time has the wrong shape, dtype, or is missing."""


class FusionMismatchError(DagnetError):
    """compile(check=True) found a fused group whose numbers differ from the unfused chain."""


class CheckpointError(DagnetError):
    """A checkpoint is missing, corrupt, truncated, unsafe, or from another graph."""


class DatasetError(DagnetError):
    """A dataset is missing or malformed; the message says how to get it."""


class TrainingError(DagnetError):
    """Training cannot go on (e.g. a NaN/Inf loss or gradient); names the step and node."""


class DistributedError(DagnetError):
    """Data-parallel training cannot go on: MPI missing or mismatched, params diverged."""


class PeerLostError(DistributedError):
    """This rank lost the others: no answer within the timeout (a rank died or hangs), or MPI
    reported a failure. Only this rank may know: it reports and ends the whole job."""


class AttrError(DagnetError):
    """An op attribute has a value the op cannot take (e.g. a negative stride)."""


class MissingDependencyError(DagnetError, ImportError):
    """A dagnet submodule needs a Python package that is not installed; the message names it."""


class TuneError(DagnetError):
    """A hyperparameter search cannot run: a bad search space (names the file and key), an
    unknown study or an unusable storage URL."""


class PerformanceWarning(UserWarning):
    """dagnet will run, but slower than it could (e.g. numpy was imported before dagnet)."""
