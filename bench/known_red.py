"""What the known-red memory saves: a week with nothing new, measured against the same week
without the memory (``--retry`` for every red recipe), in the same run.

    .venv/bin/python bench/known_red.py            # 3 red recipes, 1 green, 3 repeats
    .venv/bin/python bench/known_red.py --red 5 --repeat 5

Builds recipe-shaped upstreams (red: released with the version label not bumped, so
L5 lint fails after a full install/upgrade/backup/functional climb; green: fine), a
git fleet enrolling them, and sweeps once so the reds are red and the green is
promoted.  Then, interleaved and repeated:

  (a) ``sweep``: the memory skips the red tags (SKIP (known-red)), no harness runs;
  (b) ``sweep --retry <every red>``: what every such week cost before the memory;

and prints medians, a/b and the harness runs of each.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canonlib.config import load_config  # noqa: E402
from canonlib.demo.fleet import FLEET_TEST, META, recipe_files  # noqa: E402
from canonlib.recipe.builder import IDENTITY, UpstreamRepo  # noqa: E402
from canonlib.sweep.orchestrate import sweep  # noqa: E402


def build(root: Path, reds: int) -> Path:
    names = [f"red{i}" for i in range(reds)] + ["green"]
    fleet = root / "fleet"
    for name in names:
        up = UpstreamRepo(root / "upstream" / name)
        bad = name.startswith("red")
        up.commit(recipe_files(name, "1.0.0+1.0", label_version="0.9.0+1.0" if bad else None))
        up.tag("1.0.0+1.0")
        d = fleet / "tests" / name
        d.mkdir(parents=True)
        (d / "recipe_meta.py").write_text(META)
        (d / f"test_{name}.py").write_text(FLEET_TEST)
    ident = [a for k, v in IDENTITY.items() for a in ("-c", f"{k}={v}")]
    for args in (
        ["init", "-q", str(fleet)],
        ["-C", str(fleet), "add", "-A"],
        ["-C", str(fleet), "commit", "-q", "-m", "fleet"],
    ):
        subprocess.run(["git", *ident, *args], check=True)
    (root / "canon.toml").write_text(
        textwrap.dedent(f'''\
        fleet = "fleet"
        state_dir = "state"
        evidence_dir = "evidence"
        upstream = "{root}/upstream/{{recipe}}"
        [harness]
        command = ["{sys.executable}", "-m", "canonlib", "harness"]
    ''')
    )
    return root / "canon.toml"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--red", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="canon-bench-known-red-") as tmp:
        config = load_config(build(Path(tmp), args.red), env_overrides=False)
        reds = [f"red{i}" for i in range(args.red)]
        first = {r["recipe"]: r["label"] for r in sweep(config).rows}
        print(f"first sweep: {first}")
        times: dict[str, list[float]] = {"a": [], "b": []}
        runs: dict[str, list[int]] = {"a": [], "b": []}
        for _ in range(args.repeat):
            for kind, retry in (("a", None), ("b", reds)):
                t0 = time.perf_counter()
                rows = sweep(config, retry=retry).rows
                times[kind].append(time.perf_counter() - t0)
                runs[kind].append(sum(r["tested_commit"] is not None for r in rows))
        a, b = statistics.median(times["a"]), statistics.median(times["b"])
        print(f"(a) sweep, known-red skips:     median {a:7.2f}s  harness runs {runs['a']}")
        print(f"(b) sweep --retry every red:    median {b:7.2f}s  harness runs {runs['b']}")
        print(f"a/b = {a / b:.3f}  ({args.red} red, 1 green, {args.repeat} repeats)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
