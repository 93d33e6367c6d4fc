"""`canon verify` of two hostile dirs, each as a ratio to baselines measured in the same run.

    .venv/bin/python bench/verify_hostile.py [--repeat 3] [--files 10000] [--manifest-mb 200]
                                             [--dir EVIDENCE_DIR]

Builds the demo (three weeks swept, no evidence), runs `canon evidence run weekly` once
(or copies ``--dir``, an honest evidence dir made before, to skip those minutes), then
times, best of ``--repeat``, `canon verify DIR` as a child process (what a reviewer runs) on:

- the honest dir (baseline 1: canon's own cost, interpreter start-up included);
- a copy whose manifest.json is ``--manifest-mb`` MB of real JSON (a 200 MB string in it):
  verify must refuse it by its size, not read it; baseline 2 is ``sha256sum`` of that file,
  the least any reader of it would pay;
- a copy with ``--files`` extra 1 KiB files under ``junk/``: verify hashes each once and
  names each; baseline 3 is ``sha256sum`` over the same files (xargs, one process per 5,000).

Each is printed with its ratio to the baselines.  No wall-clock target here: the ratios
say whether verify stays bounded by the input it is handed.
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
from canonlib.evidence.manifest import MANIFEST  # noqa: E402
from canonlib.evidence.run import run_suite  # noqa: E402


def best(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def verify(d: Path, env: dict[str, str], want: int) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "canonlib", "verify", str(d)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if r.returncode != want or "Traceback" in r.stderr:
        raise SystemExit(f"verify {d}: exit {r.returncode}, wanted {want}\n{r.stderr[-2000:]}")


def sha256sum(files: list[Path]) -> None:
    r = subprocess.run(
        ["xargs", "-0", "-n", "5000", "sha256sum"],
        input=b"\0".join(str(f).encode() for f in files),
        capture_output=True,
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr.decode())


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--manifest-mb", type=int, default=200)
    ap.add_argument("--dir", type=Path, help="an honest evidence dir to start from")
    a = ap.parse_args()
    env = {
        k: v for k, v in os.environ.items() if k not in ("CCCI_REPO", "CANON_STATE", "CANON_CONFIG")
    }
    with tempfile.TemporaryDirectory(prefix="canon-bench-hostile-") as tmp:
        tmp_path = Path(tmp)
        if a.dir is None:
            root = tmp_path / "demo"
            assert run_demo(root, evidence=False, out=lambda _: None) == 0
            cfg = load_config(root / "canon.toml", env_overrides=False)
            src = run_suite(cfg, "weekly", out=lambda _: None).dir
        else:
            src = a.dir.resolve()
        honest = tmp_path / "honest" / src.name
        shutil.copytree(src, honest)
        want = 0  # every claim holds, whatever the week's verdict (a FAILED week verifies)

        big = tmp_path / "big" / src.name
        shutil.copytree(src, big)
        with (big / MANIFEST).open("w") as f:  # real bytes on disk, not a sparse file
            f.write('{"pad": "')
            chunk = "x" * (1 << 20)
            for _ in range(a.manifest_mb):
                f.write(chunk)
            f.write('"}\n')

        many = tmp_path / "many" / src.name
        shutil.copytree(src, many)
        junk = many / "junk"
        junk.mkdir()
        for i in range(a.files):
            (junk / f"{i:06}").write_bytes(os.urandom(1024))
        many_files = sorted(p for p in many.rglob("*") if p.is_file())

        files_in_honest = sum(1 for p in honest.rglob("*") if p.is_file())
        print(
            f"cores={os.cpu_count()} repeat={a.repeat} (best of); honest evidence dir: "
            f"{files_in_honest} files ({src.name})"
        )
        base_verify = best(a.repeat, lambda: verify(honest, env, want))
        print(f"baseline 1: `canon verify` of the honest dir: {base_verify * 1000:.0f} ms")

        hash_big = best(a.repeat, lambda: sha256sum([big / MANIFEST]))
        t_big = best(a.repeat, lambda: verify(big, env, 2))
        print(
            f"{a.manifest_mb} MB manifest: sha256sum of it {hash_big * 1000:.0f} ms; "
            f"`canon verify` (exit 2, refused by its size) {t_big * 1000:.0f} ms = "
            f"{t_big / base_verify:.2f}x the honest verify, {t_big / hash_big:.2f}x sha256sum of it"
        )

        hash_many = best(a.repeat, lambda: sha256sum(many_files))
        t_many = best(a.repeat, lambda: verify(many, env, 1))
        print(
            f"{a.files} extra files ({len(many_files)} in all): sha256sum over them "
            f"{hash_many * 1000:.0f} ms; `canon verify` (exit 1, each named) "
            f"{t_many * 1000:.0f} ms = {t_many / base_verify:.1f}x the honest verify, "
            f"{t_many / hash_many:.1f}x sha256sum"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
