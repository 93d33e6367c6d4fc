"""First sync vs no-change sync of a recipe with many tags (default 2,000), and what the
no-change sync's integrity check (the tips' objects are in the mirror) costs.

    .venv/bin/python bench/mirror_sync.py [--tags N] [--repeat K]

Prints the median of K runs of each and their ratio; both measured in this run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canonlib.recipe.mirror import Mirror  # noqa: E402
from tests.gitrepo import Upstream, fast_import_tags  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tags", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        up = Upstream(Path(tmp) / "up")
        up.commit()
        n_commits = max(1, a.tags // 10)
        fast_import_tags(
            up,
            n_commits,
            [(f"{i // 100}.{i % 100}.0+{i}", 1 + i % n_commits, i % 2 == 0) for i in range(a.tags)],
        )
        first, noop, unchecked = [], [], []
        for k in range(a.repeat):
            path = Path(tmp) / f"m{k}.git"
            m = Mirror("bench", path, up.url)
            t0 = time.perf_counter()
            r = m.sync()
            first.append(time.perf_counter() - t0)
            assert r.fetched and len(r.tags) == a.tags
            t0 = time.perf_counter()
            r = m.sync()
            noop.append(time.perf_counter() - t0)
            assert not r.fetched
            m._missing_objects = lambda *_: []  # the same sync without the integrity check
            t0 = time.perf_counter()
            r = m.sync()
            unchecked.append(time.perf_counter() - t0)
            assert not r.fetched
            shutil.rmtree(path)
    f, n = statistics.median(first), statistics.median(noop)
    u = statistics.median(unchecked)
    print(f"tags={a.tags} repeat={a.repeat} cores={os.cpu_count()}")
    print(f"first sync      median {f * 1000:8.1f} ms")
    print(f"no-change sync  median {n * 1000:8.1f} ms")
    print(f"no-change, integrity unchecked  median {u * 1000:8.1f} ms")
    print(f"no-change / first = {n / f:.3f}")
    print(f"no-change checked / unchecked = {n / u:.2f} (the cost of the tips' object check)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
