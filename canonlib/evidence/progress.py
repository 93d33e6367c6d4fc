"""Live progress of an evidence run on stderr, so the journal is never silent for hours.

A notebook's sweep runs in a kernel two processes away; each recipe's row is
appended to ``<state>/runs/<run>/results.jsonl`` the moment its turn ends, and
what it starts meanwhile (a cold run, a promotion) to ``progress.jsonl``.
:func:`watch_sweeps` tails those files while a notebook runs and prints one line
per recipe (decision and label) as it lands, and one per event as it starts.
Plain lines when the stream is not a TTY (the journal gets them whole); on a TTY
the outcome word is coloured.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from canonlib import term
from canonlib.files import FileProblem, read_range

POLL_S = 0.5
POLL_BYTES = 4 << 20  # read per file per poll: a row is a few KiB


def stderr_out(stream: TextIO | None = None) -> Callable[[str], None]:
    """A line printer for ``stream`` (stderr): coloured outcome words on a TTY, plain otherwise."""
    stream = stream or sys.stderr
    paint = term.use_colour(stream)

    def out(line: str) -> None:
        # progress is a courtesy: a closed stderr never stops the run
        with contextlib.suppress(BrokenPipeError, ValueError):
            print(term.colour(line) if paint else line, file=stream, flush=True)

    return out


def row_line(run_id: str, row: Mapping[str, object]) -> str:
    """One progress line for a row of a results/progress file: its values came from a
    sweep (a recipe's name, a label), so control characters show visibly, as git shows them."""

    def v(x: object) -> str:
        return term.visible(str(x))

    if "event" in row:  # from progress.jsonl: something starting
        return f"    {v(run_id)}: {v(row.get('recipe'))}: {v(row['event'])} ..."
    decision = row.get("decision") or "-"
    return f"    {v(run_id)}: {v(row.get('recipe'))}: {v(decision)} -> {v(row.get('label'))}"


class SweepTail:
    """Tails every ``results.jsonl`` under ``runs_dir`` written since it started."""

    def __init__(self, runs_dir: Path, out: Callable[[str], None]):
        self.runs_dir = Path(runs_dir)
        self.out = out
        # what is already there belongs to earlier runs: only what is appended from now on is shown
        self.offsets: dict[Path, int] = {}
        if self.runs_dir.is_dir():
            for f in self._files():
                with contextlib.suppress(OSError):
                    self.offsets[f] = f.stat().st_size
        self.lines = 0

    def _files(self) -> list[Path]:
        """Each run's rows and events, a run's events before its rows (an event starts a turn)."""
        files = [*self.runs_dir.glob("*/progress.jsonl"), *self.runs_dir.glob("*/results.jsonl")]
        return sorted(files, key=lambda f: (f.parent.name, f.name != "progress.jsonl"))

    def poll(self) -> None:
        if not self.runs_dir.is_dir():
            return
        for f in self._files():
            try:
                data = read_range(f, self.offsets.get(f, 0), POLL_BYTES)
            except (OSError, FileProblem):
                continue
            done = data.rfind(b"\n") + 1  # only whole lines; the rest next time
            if not done and len(data) == POLL_BYTES:
                done = len(data)  # a "line" longer than any row: passed over, not waited on
            self.offsets[f] = self.offsets.get(f, 0) + done
            for raw in data[:done].splitlines():
                try:
                    row: object = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict):
                    self.lines += 1
                    self.out(row_line(f.parent.name, row))


@contextmanager
def watch_sweeps(
    runs_dir: Path, out: Callable[[str], None], poll_s: float = POLL_S
) -> Iterator[SweepTail]:
    """While the block runs, print each recipe's row of any sweep that starts, as it lands."""
    tail = SweepTail(runs_dir, out)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(poll_s):
            tail.poll()

    t = threading.Thread(target=loop, name="canon-progress", daemon=True)
    t.start()
    try:
        yield tail
    finally:
        stop.set()
        t.join()
        tail.poll()  # the rows that landed in the last half second
