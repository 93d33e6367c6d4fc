"""The same sweep on 1, 2 and 3 swarm servers, in one run: wall time, CPU, ratio to one server.

    scripts/swarm-up --servers 3                 # docker contexts canon-s1 .. canon-s3
    .venv/bin/python bench/servers.py            # 9 recipes, servers 1 2 3
    .venv/bin/python bench/servers.py --recipes 12 --servers 1 3

Each sweep starts from a fresh state dir with N recipes (default 9), each with a new release
(``1.0.0+1``: no canonical yet), so each sweep has N cold runs and N promotes, on the real
engines.  One server is today's spelling (``context = "canon-s1"``); k servers are
``servers = ["canon-s1", …]``.  ``canon sweep`` runs as a child process.

CPU is counted on both sides of the docker socket: canon's (the sweep and every child it waited
for: harnesses, docker CLIs, the fleet's pytest) and the engines' (each dockerd and containerd:
utime + stime from /proc).  With K cores the sweep can take no less than that CPU / K, so
``(CPU / K) / wall(1 server)`` is the lowest ratio this machine allows.  Promotes on different
servers run at once (one at a time on each server), so with k servers the promotes are spread
over k too; each recipe's promote follows its own cold run, so its turn (``turns``: the sum of
the rows' durations, cold run + promote) is what the servers share: ``turns / k / wall(1
server)`` is the ratio were they spread evenly (turns grow when the cores are the limit).
Each sweep's objects are removed from every server afterwards (by its canon.instance label);
each sweep holds the swarm tests' lock (tests/swarmkit.py), as the tests do.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canonlib.backends.swarm import SwarmBackend  # noqa: E402
from tests.swarmkit import IMAGE, recipe_files, swarm_lock  # noqa: E402
from tests.workspace import Workspace  # noqa: E402

META = textwrap.dedent("""\
    WARM_CANONICAL = True
    DEPLOY_TIMEOUT_S = 120
    EXPECTED_NA = {"backup": "not what this bench measures"}
""")
FLEET_TEST = textwrap.dedent("""\
    import os

    def test_slot_named():
        assert os.environ["CANON_STACK"]
""")
ENGINES = ("dockerd", "containerd")


def engine_cpu_s() -> float:
    """CPU seconds used so far by every dockerd and containerd on this machine."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name in ENGINES:
            f = text.rsplit(")", 1)[1].split()
            total += sum(int(x) for x in f[11:15]) / tick  # utime stime cutime cstime
    return total


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (every process, other load included)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return (sum(f) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def workspace(root: Path, n_recipes: int, servers: int) -> Workspace:
    ws = Workspace(root)
    backend = (
        'context = "canon-s1"'
        if servers == 1
        else f"servers = {json.dumps([f'canon-s{i}' for i in range(1, servers + 1)])}"
    )
    with (root / "canon.toml").open("a") as f:
        f.write(
            f'\n[backend]\nkind = "swarm"\n{backend}\nhelper_image = "{IMAGE}"\ntimeout_s = 120\n'
        )
    for i in range(n_recipes):
        name = f"b{i}"
        ws.recipe(name, meta=META, test=FLEET_TEST)
        up = ws.upstreams[name]
        up.commit(recipe_files("1.0.0+1"), "release 1.0.0+1")
        up.tag("1.0.0+1")
    return ws


def wipe(servers: int, instance: str) -> None:
    """Everything the bench's canon made on every server, by its instance label."""
    f = ["--filter", f"label=canon.instance={instance}"]

    def d(s: int, *args: str) -> list[str]:
        p = subprocess.run(
            ["docker", "--context", f"canon-s{s}", *args], capture_output=True, text=True
        )
        return p.stdout.split()

    for s in range(1, servers + 1):
        for svc in d(s, "service", "ls", "-q", *f):
            d(s, "service", "rm", svc)
        for c in d(s, "ps", "-aq", *f):
            d(s, "rm", "-f", c)
        for kind in ("volume", "secret", "config", "network"):
            ids = d(s, kind, "ls", "-q", *f)
            if ids:
                d(s, kind, "rm", *ids)


def one_sweep(n_recipes: int, servers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"canon-bench-servers-{servers}-") as tmp:
        root = Path(tmp)
        ws = workspace(root, n_recipes, servers)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CCCI_REPO", "CANON_STATE", "CANON_CONFIG")
        }
        c0, e0, m0 = children_cpu_s(), engine_cpu_s(), machine_busy_s()
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-m", "canonlib", "--config", str(root / "canon.toml"), "sweep"]
            + ["--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        wall = time.perf_counter() - t0
        canon_cpu = children_cpu_s() - c0
        engines = engine_cpu_s() - e0
        machine = machine_busy_s() - m0
        try:
            rows = json.loads(p.stdout)
        except ValueError:
            raise SystemExit(f"sweep on {servers} server(s) failed: {p.stderr[-800:]}") from None
        bad = [
            (r["recipe"], r["label"], r.get("reason"))
            for r in rows
            if r["label"] != "PASS (promoted)"
        ]
        wipe(servers, SwarmBackend(ws.config.state_dir / "swarm").instance)
        if bad:
            raise SystemExit(f"sweep on {servers} server(s): not every recipe passed: {bad}")
        cold = sorted(r["duration_s"] for r in rows)
        where = [str(r.get("server") or "context") for r in rows]
        return {
            "wall": wall,
            "canon_cpu": canon_cpu,
            "engine_cpu": engines,
            "machine": machine,
            "turn_sum": sum(cold),
            "by_server": json.dumps({s: where.count(s) for s in sorted(set(where))}),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--recipes", type=int, default=int(os.environ.get("BENCH_RECIPES", "9")))
    ap.add_argument("--servers", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    print(f"{args.recipes} recipes, a new release each; {cores} cores", flush=True)
    results = {}
    for n in args.servers:
        with swarm_lock():  # the swarm tests' lock: they would see this bench's slots as leftovers
            r = results[n] = one_sweep(args.recipes, n)
        print(
            f"{n} server(s): wall {r['wall']:6.1f}s  CPU canon {r['canon_cpu']:6.1f}s  "
            f"engines {r['engine_cpu']:6.1f}s  (machine busy {r['machine']:6.1f}s, other "
            f"load included)  turns {r['turn_sum']:6.1f}s  cold runs per server {r['by_server']}",
            flush=True,
        )
    base = results.get(1)
    if base is None:
        return
    for n, r in results.items():
        cpu = r["canon_cpu"] + r["engine_cpu"]
        floor = cpu / cores / base["wall"]
        spread = r["turn_sum"] / n / base["wall"]  # its turns, were they spread evenly
        print(
            f"{n} server(s): {r['wall'] / base['wall']:.2f}x one server "
            f"(ideal {1 / n:.2f}); CPU {cpu:.1f}s on {cores} cores >= {cpu / cores:.1f}s "
            f"of wall: floor {floor:.2f}x; its turns spread evenly over {n}: {spread:.2f}x"
        )


if __name__ == "__main__":
    main()
