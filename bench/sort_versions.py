"""Sorting 100,000 recipe tags: canon's sort_versions vs packaging.version.Version, same strings.

    .venv/bin/python bench/sort_versions.py [--n 100000] [--repeat 7]

Both sides parse every string (canon's parse cache is cleared before each run).
Tags look like real recipe tags (``X.Y.Z+app``, some prereleases, ``v`` prefixes)
and are chosen so PEP 440 parses them too. Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packaging.version import Version  # noqa: E402

from canonlib.recipe.versions import parse_version, sort_versions  # noqa: E402

APPS = ["1.27.2", "v2.0.0", "28.0.2-fpm", "1.0.5-social-amd64", "v0.4", "1.15.3", "25.0.1"]


def make_tags(n: int, seed: int = 42) -> list[str]:
    rnd = random.Random(seed)
    tags = set()
    while len(tags) < n:
        base = f"{rnd.randint(0, 30)}.{rnd.randint(0, 40)}.{rnd.randint(0, 60)}"
        if rnd.random() < 0.05:
            base += f"-rc.{rnd.randint(1, 9)}"
        tags.add(f"{base}+{rnd.choice(APPS)}")
    return sorted(tags, key=lambda _: rnd.random())


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    tags = make_tags(a.n)
    ours, theirs = [], []
    for _ in range(a.repeat):  # interleaved
        parse_version.cache_clear()
        t0 = time.perf_counter()
        out = sort_versions(tags)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sorted(tags, key=Version)
        theirs.append(time.perf_counter() - t0)
    assert len(out) == a.n
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"cores={os.cpu_count()} n={a.n} repeat={a.repeat}")
    print(f"canon sort_versions        median {o * 1000:8.1f} ms")
    print(f"packaging Version sort     median {t * 1000:8.1f} ms")
    print(f"sort_versions / packaging = {o / t:.2f}  (target <= 2.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
