"""What the report costs: the weekly suite with summary.md/index.html/<nb>.html against without.

    .venv/bin/python bench/report.py [--repeat 2]

Builds the demo (its three weeks swept, no evidence), then runs the weekly suite
``--repeat`` times with the report and as many times without it, alternating, in
this one process; "without" replaces the report writer by a no-op for that run.
Prints both medians and their ratio (target: with / without <= 1.25), and the
report's own time in the last run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canonlib.config import load_config  # noqa: E402
from canonlib.demo.fleet import run_demo  # noqa: E402
from canonlib.evidence import report  # noqa: E402
from canonlib.evidence.run import run_suite  # noqa: E402

TARGET = 1.25


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    for k in ("CCCI_REPO", "CANON_STATE", "CANON_CONFIG", "GITHUB_STEP_SUMMARY"):
        os.environ.pop(k, None)
    real = report.write_report
    spent: list[float] = []

    def timed(d, stmt):
        t0 = time.perf_counter()
        try:
            return real(d, stmt)
        finally:
            spent.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory(prefix="canon-bench-report-") as tmp:
        root = Path(tmp) / "demo"
        assert run_demo(root, evidence=False, out=lambda _: None) == 0
        cfg = load_config(root / "canon.toml", env_overrides=False)
        with_report, without = [], []
        for _ in range(a.repeat):
            for on in (True, False):
                report.write_report = timed if on else (lambda d, stmt: [])
                t0 = time.perf_counter()
                ev = run_suite(cfg, "weekly", out=lambda _: None)
                (with_report if on else without).append(time.perf_counter() - t0)
                assert (ev.dir / "index.html").exists() == on, ev.dir
        report.write_report = real
    w, wo = statistics.median(with_report), statistics.median(without)
    print(f"cores={os.cpu_count()} repeat={a.repeat}")
    print(f"weekly suite on the demo fleet: with the report median {w:.1f}s, without {wo:.1f}s")
    print(
        "report alone (summary.md, index.html, figures, 3 notebooks to HTML): "
        f"median {statistics.median(spent):.2f}s"
    )
    ratio = w / wo
    print(
        f"ratio with/without: {ratio:.3f} (target <= {TARGET}): "
        f"{'ok' if ratio <= TARGET else 'OVER'}"
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
