"""`canon evidence run weekly` on the demo fleet: total time, and how much is kernel start-up.

    .venv/bin/python bench/evidence_weekly.py [--repeat 3]

Builds the demo (its three weeks swept, no evidence), then times the weekly
suite as a child process. The start-up share is measured in the same run: an
empty notebook executed the same way (papermill + a fresh kernel importing
canonlib's notebook helpers), times the number of notebooks in the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from canonlib.config import load_config  # noqa: E402
from canonlib.demo.fleet import run_demo  # noqa: E402
from canonlib.evidence.run import SUITES, execute  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="canon-bench-ev-") as tmp:
        root = Path(tmp) / "demo"
        assert run_demo(root, evidence=False, out=lambda _: None) == 0
        cfg = load_config(root / "canon.toml", env_overrides=False)
        empty = Path(tmp) / "empty.ipynb"
        nb = nbformat.v4.new_notebook()
        p = nbformat.v4.new_code_cell('config_path = ""\nevidence_dir = ""')
        p.metadata["tags"] = ["parameters"]
        nb.cells = [p, nbformat.v4.new_code_cell("from canonlib.evidence import notebook as nbk")]
        nbformat.write(nb, empty)
        totals, startups, per_nb = [], [], []
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CCCI_REPO", "CANON_STATE", "CANON_CONFIG")
        }
        for i in range(a.repeat):
            t0 = time.perf_counter()
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "canonlib",
                    "--config",
                    str(root / "canon.toml"),
                    "evidence",
                    "run",
                    "weekly",
                ],
                capture_output=True,
                text=True,
                env=env,
            )
            totals.append(time.perf_counter() - t0)
            if (
                r.returncode not in (0, 1) or not r.stdout.strip()
            ):  # 1: the demo's designed FAILED week
                raise SystemExit(r.stdout + r.stderr)
            ev = Path(r.stdout.strip().splitlines()[-1])
            m = json.loads((ev / "manifest.json").read_text())["predicate"]["canon"]
            per_nb.append({n["name"]: n["seconds"] for n in m["notebooks"]})
            _rc, _to, secs = execute(
                empty,
                Path(tmp) / f"empty-out-{i}.ipynb",
                {"config_path": str(cfg.path)},
                cwd=Path(tmp),
                timeout_s=300,
                cell_timeout_s=300,
                log=Path(tmp) / "e.log",
            )
            startups.append(secs)
    n = len(SUITES["weekly"])
    total, start = statistics.median(totals), statistics.median(startups)
    print(f"cores={os.cpu_count()} repeat={a.repeat}")
    print(f"evidence run weekly on the demo fleet: median {total:.1f}s (target < 60 s)")
    print("per notebook (last run): " + ", ".join(f"{k} {v:.1f}s" for k, v in per_nb[-1].items()))
    print(
        f"kernel + papermill start-up: {start:.2f}s per notebook x {n} = {start * n:.1f}s "
        f"({start * n / total:.0%}); canon's own work: {total - start * n:.1f}s "
        f"({1 - start * n / total:.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
