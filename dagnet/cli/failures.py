"""The `dagnet` command's last line of defence: every failure ends as one line on stderr and a
non-zero exit code, never a traceback and never a silent 0.

    DagnetError (the user's mistake)          dagnet CMD: message                       exit 2
    OSError (the system refused a file)       dagnet CMD: PATH: meaning (ENAME); fix     exit 2
    MemoryError                               dagnet CMD: out of memory ...              exit 2
    BrokenPipeError of a closed stdout        (`dagnet summary lenet | head`) quiet      exit 0
    KeyboardInterrupt                         dagnet CMD: interrupted                    exit 130
    anything else: a bug in dagnet            one line + the file holding the traceback exit 1
"""
from __future__ import annotations

import datetime
import os
import select
import sys
import tempfile
import traceback

from dagnet.errors import DagnetError
from dagnet.files import describe_os_error, fix_for, short

#: the longest line the command prints for an error
MAX_LINE = 600


def run(func, args, command: str) -> int:
    """func(args), its failures turned into one line and an exit code (see the module doc)."""
    try:
        code = func(args)
        sys.stdout.flush()  # a closed stdout shows here, inside the handlers, not at exit
        return code
    except DagnetError as e:
        return say(command, str(e), 2)
    except BrokenPipeError as e:
        if stdout_closed():  # the reader left (`| head`): nothing more to say, not an error
            sys.stdout = open(os.devnull, "w")
            return 0
        return os_error(command, e)
    except OSError as e:
        return os_error(command, e)
    except MemoryError:
        return say(command, "out of memory; use a smaller model, batch size or data set", 2)
    except KeyboardInterrupt as e:  # `dagnet train` says what its checkpoint holds
        return say(command, str(e) or "interrupted", 130)
    except Exception:  # noqa: BLE001 - anything else is a bug; the user gets a line and a file
        return bug(command)


def say(command: str, message: str, code: int) -> int:
    line = " ".join(message.split())  # one line, whatever the message held
    print(f"dagnet {command}: {short(line, MAX_LINE)}", file=sys.stderr)
    return code


def os_error(command: str, e: OSError) -> int:
    """PATH: meaning (ENAME); what to do."""
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    where = " -> ".join(map(os.fsdecode, paths)) if paths else "a file"
    folder = os.path.dirname(os.path.abspath(os.fsdecode(paths[-1]))) if paths else "the path"
    return say(command, f"{where}: {describe_os_error(e)}; {fix_for(e, folder)}", 2)


def stdout_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def bug(command: str) -> int:
    """One line naming the exception and the file that holds its full traceback; exit 1."""
    kind, value, _ = sys.exc_info()
    text = "".join(traceback.format_exc())
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        fd, path = tempfile.mkstemp(prefix=f"dagnet-crash-{stamp}-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(f"dagnet {' '.join(sys.argv[1:])}\n\n{text}")
        where = f"the traceback is in {path}"
    except OSError:
        where = "the traceback follows"
    summary = short(" ".join(f"{kind.__name__}: {value}".split()), 200)
    say(command, f"internal error ({summary}); this is a bug in dagnet: please report it with "
                 f"the command line and the traceback; {where}", 1)
    if where == "the traceback follows":
        print(text, file=sys.stderr)
    return 1
