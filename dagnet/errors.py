"""Every user-facing failure in dagnet is a DagnetError subclass.

Messages say what went wrong, where (node, op, key path, step) and the fix; see docs/errors.md.
"""


#: the longest message an error keeps: a value quoted into it (an expanded YAML alias, a name
#: of a million characters) is elided in the middle, so that errors stay short lines
MAX_MESSAGE = 1000


def did_you_mean(word, choices) -> str:
    """"; did you mean 'x'?" for the closest of choices to a misspelt word, else ""."""
    import difflib  # here: errors.py is imported by everything, difflib only when one is raised

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class DagnetError(Exception):
    """Base class of all dagnet errors. Its message is one line (line breaks, e.g. of an
    array's repr, become spaces) of at most MAX_MESSAGE characters."""

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            text = args[0]
            if "\n" in text:
                text = " ".join(part.strip() for part in text.splitlines() if part.strip())
            if len(text) > MAX_MESSAGE:
                keep = MAX_MESSAGE - 40
                text = (f"{text[:keep - keep // 3]} ... [{len(text) - keep:,} characters elided] "
                        f"... {text[len(text) - keep // 3:]}")
            args = (text,)
        super().__init__(*args)


class ArgumentError(DagnetError):
    """A public function was given an argument of the wrong type or out of range."""


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


class RunFolderError(DagnetError):
    """A run folder cannot be used: another process writes it, or its files cannot be written."""


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
