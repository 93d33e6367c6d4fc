"""The top-level guard of ``canon``: every failure ends as one line on stderr.

- a :class:`CanonError` prints its message (exit code its own);
- a full disk, a read-only or misplaced state dir (``OSError`` naming a path,
  or SQLite saying so) is a state problem: one line naming the path and what
  to do, exit 2;
- a closed stdout (``canon status --json | head -1``) ends canon quietly, exit 0,
  as git does when its pager quits;
- anything else is a bug in canon: one line naming the exception plus the path
  of a log holding the full traceback (``<state>/logs/crash-*.log``, else a
  temp dir), exit 1.
"""

from __future__ import annotations

import contextlib
import os
import select
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from canonlib.errors import CanonError, one_line, os_error_message, sqlite_message

EXIT_STATE = 2
EXIT_CRASH = 1


def say(msg: str) -> None:
    """One line on stderr; a closed stderr is not worth a traceback either."""
    with contextlib.suppress(OSError, ValueError):
        print(f"canon: {msg}", file=sys.stderr, flush=True)


def crash_log(e: BaseException, state_dir: Path | None) -> Path | None:
    """Write the traceback to ``<state>/logs/crash-<ts>-<pid>.log`` (else a temp dir)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"crash-{stamp}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(e))
    header = f"canon {' '.join(sys.argv[1:])}\npython {sys.version.split()[0]}\n\n"
    dirs = [state_dir / "logs"] if state_dir else []
    dirs.append(Path(tempfile.gettempdir()))
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            path = d / (name if d != Path(tempfile.gettempdir()) else f"canon-{name}")
            with open(path, "x", encoding="utf-8") as f:
                f.write(header + text)
            return path
        except OSError:
            continue
    return None


def _stdout_closed() -> bool:
    """True when stdout is a pipe nobody reads any more (EPIPE on flush, or POLLERR)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):
        return False
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def guarded(func: Callable[[], int], state_dir: Callable[[], Path | None]) -> int:
    """Run ``func`` and turn every failure into one line and an exit code.

    ``state_dir`` is asked only when a message or a crash log needs it; it
    returns None when the configuration cannot be loaded.
    """
    try:
        code = func()
        sys.stdout.flush()
        return code
    except BrokenPipeError as e:
        if _stdout_closed():
            _silence_stdout()
            return 0
        return _crash(e, state_dir)
    except CanonError as e:
        say(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except sqlite3.DatabaseError as e:
        state = _safe(state_dir)
        msg = sqlite_message(e, state / "canon.db" if state else None)
        if msg is None:
            return _crash(e, state_dir)
        say(msg)
        return EXIT_STATE
    except OSError as e:
        msg = os_error_message(e, _safe(state_dir))
        if msg is None:
            return _crash(e, state_dir)
        say(msg)
        return EXIT_STATE
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001 -- the last line of defence
        signalled = getattr(e, "exit_code", None)
        if signalled in (130, 143):
            say(f"{e}; the run is marked interrupted, a rerun completes it")
            return int(signalled)
        return _crash(e, state_dir)


def _safe(state_dir: Callable[[], Path | None]) -> Path | None:
    try:
        return state_dir()
    except Exception:  # noqa: BLE001 -- only a hint for a message
        return None


def _crash(e: BaseException, state_dir: Callable[[], Path | None]) -> int:
    log = crash_log(e, _safe(state_dir))
    where = f"the full traceback is in {log}" if log else "no log could be written"
    say(
        f"unexpected {type(e).__name__}: {one_line(e, 200)} (a bug in canon; {where}; "
        "please report it)"
    )
    return EXIT_CRASH
