"""A no-op weekly sweep of a whole catalogue, measured against git itself in the same run.

    .venv/bin/python bench/noop_sweep.py                 # N = 50, 250, 1000
    .venv/bin/python bench/noop_sweep.py --n 250 --repeat 7
    BENCH_N=250 .venv/bin/python bench/noop_sweep.py

Builds N upstream recipe repos (5-80 tags each, annotated and lightweight,
``X.Y.Z+app`` names) with one ``git fast-import`` each, a fleet enrolling all
of them, mirrors and a registry in which every canonical already is the
latest release (so the sweep must run no harness: the configured harness is
``false``, and any run would show as FAIL). Then, interleaved and repeated:

  (a) ``canon sweep --json`` as a child process, default settings;
  (b) the floor: a serial loop of ``git ls-remote`` over the same upstreams;
  (c) the naive way: a serial loop of ``git fetch`` with canon's refspecs
      into the existing mirrors;
  (d) inside (a): the start-of-sweep state guard alone, in-process (the registry
      checked against the slots' markers and ``quick_check``, then the automatic
      backup), to show what "the registry knows when it is behind" costs a week;

and prints medians, a/b, a/c, the per-recipe cost and canon's peak RSS.

It also prints the CPU each side used (the process and every child it waited for):
with K cores, (a) can take no less than its CPU / K, so ``(CPU of a / K) / b`` is
the lowest a/b this machine allows for canon as it is; a ratio above that floor is
lost overlap, a floor above a target is work that no parallelism can hide.

canonlib's bytecode is compiled first (``compileall``), as a pip or pipx install
does: an editable checkout under PYTHONDONTWRITEBYTECODE would otherwise compile
every module again on each start, and (a) would measure the compiler.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canonlib.config import load_config  # noqa: E402
from canonlib.recipe.versions import latest_release  # noqa: E402
from canonlib.state.registry import Registry  # noqa: E402
from canonlib.sweep.orchestrate import sync_all  # noqa: E402

GIT_ID = [
    "-c",
    "user.name=bench",
    "-c",
    "user.email=bench@example.org",
    "-c",
    "init.defaultBranch=main",
]
APPS = ["1.27.2", "v2.0.0", "28.0.2-fpm", "1.0.5-social-amd64", "v0.4", "1.15.3"]


def make_upstream(path: Path, rnd: random.Random) -> None:
    n_tags = rnd.randint(5, 80)
    app = rnd.choice(APPS)
    lines = []
    for i in range(1, n_tags + 1):
        body = f"release {i}\n"
        lines += [
            "commit refs/heads/main",
            f"mark :{i}",
            f"committer B <b@example.org> {1700000000 + i} +0000",
            f"data {len(body)}",
            body,
            "M 644 inline compose.yml",
            f"data {len(body)}",
            body,
        ]
    major = 0
    for i in range(1, n_tags + 1):
        if rnd.random() < 0.1:
            major += 1
        tag = f"{major}.{i // 10}.{i % 10}+{app}"
        if rnd.random() < 0.5:
            lines += [
                f"tag {tag}",
                f"from :{i}",
                "tagger B <b@example.org> 1700000000 +0000",
                f"data {len(tag)}",
                tag,
            ]
        else:
            lines += [f"reset refs/tags/{tag}", f"from :{i}", ""]
    subprocess.run(["git", *GIT_ID, "init", "-q", str(path)], check=True)
    subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=path,
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
    )


def build(root: Path, n: int) -> Path:
    rnd = random.Random(n)
    (root / "fleet" / "tests").mkdir(parents=True)
    names = [f"recipe-{i:04d}" for i in range(n)]
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda nm: make_upstream(root / "upstream" / nm, random.Random(f"{n}-{nm}")), names
            )
        )
    for nm in names:
        d = root / "fleet" / "tests" / nm
        d.mkdir()
        (d / "recipe_meta.py").write_text("WARM_CANONICAL = True\n")
    del rnd
    (root / "canon.toml").write_text(
        f'fleet = "fleet"\nstate_dir = "state"\nupstream = "{root}/upstream/{{recipe}}"\n'
        '[harness]\ncommand = ["false"]\n'
    )
    cfg = load_config(root / "canon.toml", env_overrides=False)
    reports = sync_all(cfg, names)
    with Registry.open(cfg.db_path) as reg:
        for nm, rep in reports.items():
            latest = latest_release(rep.tags)
            reg.record_promotion(nm, latest, latest, rep.tags[latest], deployment=f"warm-{nm}-1")
    return root / "canon.toml"


PEAK = (
    "import resource, sys\nfrom canonlib.cli.main import main\nrc = main(sys.argv[1:])\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def cpu_s(*who: int) -> float:
    """CPU seconds used so far by ``who`` (RUSAGE_SELF, RUSAGE_CHILDREN: every child waited for,
    with the children each of them waited for)."""
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, who))


BOTH = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)


def run_canon(config: Path) -> tuple[float, int, float]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("CCCI_REPO", "CANON_STATE", "CANON_CONFIG")
    }
    c0, t0 = cpu_s(resource.RUSAGE_CHILDREN), time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", PEAK, "--config", str(config), "sweep", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    dt, cpu = time.perf_counter() - t0, cpu_s(resource.RUSAGE_CHILDREN) - c0
    rows = json.loads(p.stdout)
    bad = [r for r in rows if not r["label"].startswith("SKIP (no-new-version)")]
    if p.returncode != 0 or bad:
        raise SystemExit(
            f"the no-op sweep was not a no-op: rc={p.returncode} {bad[:2]} {p.stderr[-500:]}"
        )
    peak = int(p.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return dt, peak, cpu


def run_ls_remote(upstreams: list[Path]) -> tuple[float, float]:
    c0, t0 = cpu_s(*BOTH), time.perf_counter()
    for u in upstreams:
        subprocess.run(
            ["git", "ls-remote", "--", str(u), "refs/heads/main", "refs/tags/*"],
            capture_output=True,
            check=True,
        )
    return time.perf_counter() - t0, cpu_s(*BOTH) - c0


def run_fetch(upstreams: list[Path], mirrors: Path) -> float:
    t0 = time.perf_counter()
    for u in upstreams:
        subprocess.run(
            [
                "git",
                "fetch",
                "--quiet",
                "--atomic",
                "--prune",
                "--force",
                "--no-tags",
                "--no-write-fetch-head",
                "--",
                str(u),
                "+refs/heads/main:refs/heads/main",
                "+refs/tags/*:refs/tags/*",
            ],
            cwd=mirrors / f"{u.name}.git",
            check=True,
        )
    return time.perf_counter() - t0


def run_guard(cfg) -> float:
    from canonlib.backends import make_backend
    from canonlib.state import registry_guard

    t0 = time.perf_counter()
    registry_guard.require_current(cfg.db_path, make_backend(cfg), "sweep")
    registry_guard.auto_backup(cfg.db_path)
    return time.perf_counter() - t0


def measure(n: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"canon-bench-{n}-") as tmp:
        t0 = time.perf_counter()
        config = build(Path(tmp), n)
        setup = time.perf_counter() - t0
        cfg = load_config(config, env_overrides=False)
        upstreams = sorted((Path(tmp) / "upstream").iterdir())
        a, b, c, d, peaks, a_cpu, b_cpu = [], [], [], [], [], [], []
        run_canon(config)  # warm the page cache once, untimed
        for _ in range(repeat):  # interleaved
            dt, peak, cpu = run_canon(config)
            a.append(dt)
            peaks.append(peak)
            a_cpu.append(cpu)
            dt, cpu = run_ls_remote(upstreams)
            b.append(dt)
            b_cpu.append(cpu)
            c.append(run_fetch(upstreams, cfg.mirrors_dir))
            d.append(run_guard(cfg))
    ma, mb, mc = statistics.median(a), statistics.median(b), statistics.median(c)
    return {
        "n": n,
        "setup_s": setup,
        "a": ma,
        "b": mb,
        "c": mc,
        "d": statistics.median(d),
        "peak_mb": max(peaks) / 1024,
        "a_cpu": statistics.median(a_cpu),
        "b_cpu": statistics.median(b_cpu),
        "a_runs": a,
        "b_runs": b,
        "c_runs": c,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--n", type=int, action="append", help="catalogue size (repeatable); default 50, 250, 1000"
    )
    ap.add_argument(
        "--repeat", type=int, default=5, help="interleaved repetitions, median reported (>= 5)"
    )
    args = ap.parse_args()
    compileall.compile_dir(ROOT / "canonlib", quiet=1)  # as an install does; see the docstring
    sizes = args.n or (
        [int(os.environ["BENCH_N"])] if os.environ.get("BENCH_N") else [50, 250, 1000]
    )
    git_version = subprocess.run(
        ["git", "--version"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    cores = len(os.sched_getaffinity(0))
    print(f"cores={cores} repeat={args.repeat} git={git_version}")
    results = []
    for n in sizes:
        r = measure(n, max(args.repeat, 5))
        results.append(r)
        print(
            f"N={n:5d}  (a) canon sweep {r['a']:.3f}s  (b) ls-remote loop {r['b']:.3f}s  "
            f"(c) fetch loop {r['c']:.3f}s   "
            f"a/b = {r['a'] / r['b']:.2f}  a/c = {r['a'] / r['c']:.2f}  "
            f"per recipe {r['a'] / n * 1000:.2f} ms  peak RSS {r['peak_mb']:.1f} MB  "
            f"(setup {r['setup_s']:.1f}s)\n"
            f"         (d) state guard + backup {r['d'] * 1000:.1f} ms = "
            f"{r['d'] / r['a']:.1%} of (a)\n"
            f"         CPU (a) {r['a_cpu']:.3f}s  (b) {r['b_cpu']:.3f}s  "
            f"= {r['a_cpu'] / r['b_cpu']:.2f}x;"
            f"  on {cores} cores (a) >= {r['a_cpu'] / cores:.3f}s: "
            f"a/b floor {r['a_cpu'] / cores / r['b']:.2f}",
            flush=True,
        )
    if len(results) > 1:
        base = results[0]
        for r in results[1:]:
            print(
                f"growth {base['n']} -> {r['n']} (x{r['n'] / base['n']:.0f}): "
                f"canon x{r['a'] / base['a']:.2f}, "
                f"ls-remote x{r['b'] / base['b']:.2f}, "
                f"per-recipe canon {base['a'] / base['n'] * 1000:.2f} -> "
                f"{r['a'] / r['n'] * 1000:.2f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
