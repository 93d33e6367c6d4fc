"""Offline `canon verify` of the demo's weekly evidence: one dir, and a year of them (52 dirs),
as a ratio to `sha256sum -c` over the same files, measured in the same run.

    .venv/bin/python bench/verify_offline.py [--repeat 3] [--weeks 52]

Builds the demo (three weeks swept, no evidence), runs `canon evidence run weekly`
once, copies that dir ``--weeks`` times, then times, best of ``--repeat``:

- ``sha256sum -c`` over every file of the dir(s) (the baseline: hashing alone);
- ``verify()`` in-process (canon's whole check minus interpreter start-up);
- ``canon verify DIR`` as a child process per dir (what a reviewer runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canonlib.config import load_config  # noqa: E402
from canonlib.demo.fleet import run_demo  # noqa: E402
from canonlib.evidence.manifest import hash_tree  # noqa: E402
from canonlib.evidence.run import run_suite  # noqa: E402
from canonlib.evidence.verify import verify  # noqa: E402


def best(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def sha256sum_check(dirs: list[Path], sums: Path) -> None:
    r = subprocess.run(
        ["sha256sum", "--quiet", "-c", str(sums)], cwd="/", capture_output=True, text=True
    )
    if r.returncode != 0:
        raise SystemExit(r.stdout + r.stderr)


def write_sums(dirs: list[Path], sums: Path) -> int:
    lines = [f"{digest}  {d / name}" for d in dirs for name, digest in hash_tree(d).items()]
    sums.write_text("\n".join(lines) + "\n")
    return len(lines)


def verify_all(dirs: list[Path]) -> None:
    for d in dirs:
        if not all(c.ok for c in verify(d)):
            raise SystemExit(f"verify failed on {d}")


def cli_all(dirs: list[Path], env: dict[str, str]) -> None:
    for d in dirs:
        r = subprocess.run(
            [sys.executable, "-m", "canonlib", "verify", str(d)], capture_output=True, env=env
        )
        if r.returncode != 0:
            raise SystemExit(r.stdout.decode() + r.stderr.decode())


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--weeks", type=int, default=52)
    a = ap.parse_args()
    env = {
        k: v for k, v in os.environ.items() if k not in ("CCCI_REPO", "CANON_STATE", "CANON_CONFIG")
    }
    with tempfile.TemporaryDirectory(prefix="canon-bench-verify-") as tmp:
        tmp_path = Path(tmp)
        root = tmp_path / "demo"
        assert run_demo(root, evidence=False, out=lambda _: None) == 0
        cfg = load_config(root / "canon.toml", env_overrides=False)
        ev = run_suite(cfg, "weekly", out=lambda _: None)
        one = tmp_path / "one" / ev.dir.name
        shutil.copytree(ev.dir, one)
        year = []
        for w in range(a.weeks):
            d = tmp_path / "year" / f"week-{w:02d}" / ev.dir.name
            shutil.copytree(ev.dir, d)
            year.append(d)
        size = sum(p.stat().st_size for p in one.rglob("*") if p.is_file())
        files_in_one = sum(1 for p in one.rglob("*") if p.is_file())
        print(
            f"cores={os.cpu_count()} repeat={a.repeat} (best of); weekly evidence dir: "
            f"{files_in_one} files, {size / 1024:.0f} KiB; verdict {ev.verdict.result}"
        )
        for label, dirs in (("1 dir", [one]), (f"{a.weeks} dirs", year)):
            sums = tmp_path / f"sums-{len(dirs)}"
            nfiles = write_sums(dirs, sums)
            base = best(a.repeat, lambda dirs=dirs, sums=sums: sha256sum_check(dirs, sums))
            inproc = best(a.repeat, lambda dirs=dirs: verify_all(dirs))
            cli = best(1 if len(dirs) > 1 else a.repeat, lambda dirs=dirs: cli_all(dirs, env))
            print(
                f"{label} ({nfiles} files): sha256sum -c {base * 1000:.1f} ms; "
                f"verify() in-process {inproc * 1000:.0f} ms = {inproc / base:.0f}x; "
                f"`canon verify` per dir {cli * 1000:.0f} ms = {cli / base:.0f}x "
                f"({cli / len(dirs) * 1000:.0f} ms per dir)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
