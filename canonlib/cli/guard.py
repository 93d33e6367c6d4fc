"""The top-level guard of ``canon``: every failure ends as one line on stderr.

- a :class:`CanonError` prints its message (exit code its own);
- a full disk, a read-only or misplaced state dir (``OSError`` naming a path,
  or SQLite saying so) is a state problem: one line naming the path and what
  to do, exit 2;
- a reader of stdout that went away (``canon status --json | head -1``: EPIPE) ends
  canon quietly, exit 0: the reader took what it wanted, as git's does when its pager
  quits, and a ``set -o pipefail`` script does not fail on it (a filter killed by
  SIGPIPE would exit 141; canon ignores SIGPIPE, so a sweep is never killed halfway by
  its reader, and chooses 0);
- a reader of stderr that went away changes nothing: what canon says there is lost, the
  run and its exit code are not (:class:`QuietStream`);
- a stdout or stderr closed before canon started (``canon status >&- 2>&-``) is
  /dev/null (:func:`open_std_streams`): canon runs, prints nowhere, and exits with
  its own code; no file canon opens can become fd 1 or 2 and take a child's output;
- anything else is a bug in canon: one line naming the exception plus the path
  of a log holding the full traceback (``<state>/logs/crash-*.log``, else a
  temp dir), exit 1.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from canonlib.errors import CanonError, one_line, os_error_message, sqlite_message
from canonlib.term import visible

EXIT_STATE = 2
EXIT_CRASH = 1


def say(msg: str) -> None:
    """One line on stderr, its control characters shown (:func:`term.visible`); a closed
    stderr is not worth a traceback either."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(f"canon: {visible(msg, keep=chr(10))}", file=sys.stderr, flush=True)


class QuietStream:
    """stderr, whose writes never fail: a reader gone (EPIPE) turns it into /dev/null."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except (OSError, ValueError):
            _silence(self.stream)
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            _silence(self.stream)

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def open_std_streams() -> None:
    """Put /dev/null on a closed fd 0, 1 or 2 (``canon status >&-``), and make it the stream.

    Without it Python's ``sys.stdout`` is None (the guard's flush is an AttributeError), and
    the next file canon opens (the registry) would become fd 1, where a child's output lands.
    """
    for fd, name, mode in (
        (0, "stdin", os.O_RDONLY),
        (1, "stdout", os.O_WRONLY),
        (2, "stderr", os.O_WRONLY),
    ):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


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
            with open(path, "x", encoding="utf-8", errors="backslashreplace") as f:
                f.write(header + text)
            return path
        except OSError:
            continue
    return None


def _reader_gone(stream: TextIO) -> bool:
    """True when ``stream`` is a pipe nobody reads any more (EPIPE on flush, or POLLERR)."""
    try:
        stream.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError, AttributeError):
        return False
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _silence(stream: TextIO) -> None:
    """Point ``stream``'s fd at /dev/null so the interpreter's final flush cannot fail again.

    Only for fd 1 and 2: a stream that is not one of them (pytest's capture) is left alone.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = stream.fileno()
        if fd not in (1, 2):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


def _output_gone() -> bool:
    """After an EPIPE: True (and stdout silenced) when it was canon's stdout."""
    if not _reader_gone(sys.stdout):
        return False
    _silence(sys.stdout)
    return True


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
        if _output_gone():
            return 0
        return _crash(e, state_dir)
    except SystemExit:  # argparse after --help or a usage error: its text may meet a gone reader
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            _output_gone()
        raise
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
        msg = os_error_message(e, _safe(state_dir)) or _in_the_way(e)
        if msg is None:
            return _crash(e, state_dir)
        say(msg)
        return EXIT_STATE
    except GeneratorExit:
        raise
    except BaseException as e:  # noqa: BLE001 -- the last line of defence
        signalled = getattr(e, "exit_code", None)
        if signalled in (130, 143):
            say(f"{e}; the run is marked interrupted, a rerun completes it")
            return int(signalled)
        return _crash(e, state_dir)


def _in_the_way(e: OSError) -> str | None:
    """EEXIST naming a path: a file (a FIFO, a link) stands where canon makes a directory."""
    if e.errno != errno.EEXIST or not e.filename:
        return None
    return (
        f"{e.filename}: {e.strerror}; canon makes a directory there: move what is there away "
        "and re-run"
    )


def _safe(state_dir: Callable[[], Path | None]) -> Path | None:
    try:
        return state_dir()
    except Exception:  # noqa: BLE001 -- only a hint for a message
        return None


def _crash(e: BaseException, state_dir: Callable[[], Path | None]) -> int:
    try:
        log = crash_log(e, _safe(state_dir))
    except Exception:  # noqa: BLE001 -- the guard itself must never end in a traceback
        log = None
    where = f"the full traceback is in {log}" if log else "no log could be written"
    say(
        f"unexpected {type(e).__name__}: {one_line(e, 200)} (a bug in canon; {where}; "
        "please report it)"
    )
    return EXIT_CRASH
