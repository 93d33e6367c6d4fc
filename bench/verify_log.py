"""`canon verify --log` on a log of N entries (default 520: ten years of a one-recipe week, or
one year of ten suites), as a ratio to `sha256sum -c` over the same N manifests, measured in
the same run.

    .venv/bin/python bench/verify_log.py [--entries 520] [--repeat 3]

Builds a real evidence log with canon's own writer (``canonlib.evidence.log.LogRepo``): N
manifests on disk, one commit per entry holding ``entries.jsonl`` and a checkpoint signed with
a fresh ed25519 key, the registry chain growing every other entry; clones it as a reviewer
would (``git clone``), then times, best of ``--repeat``:

- ``sha256sum -c`` over the N manifests (the baseline: hashing what the entries name);
- ``log_claims()`` in-process (the whole log check minus interpreter start-up);
- ``canon verify --log CLONE --key PUB`` as a child process (what a reviewer runs): every
  checkpoint in the clone's history checked for consistency and signature, the root
  recomputed, the chain never going backwards, the remembered checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from canonlib.evidence import merkle  # noqa: E402
from canonlib.evidence.log import (  # noqa: E402
    LogRepo,
    checkpoint_body,
    entry_line,
    log_claims,
    sign_note,
)

ORIGIN = "bench.canon.invalid/log"


def best(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def build(work: Path, n: int) -> tuple[Path, Path, Path]:
    """N manifests, a log of N entries over them (one commit each), the public key."""
    key = Ed25519PrivateKey.generate()
    pub = work / "log.pub"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    repo = LogRepo(work / "log.git")
    repo.init()
    sums = []
    lines: list[bytes] = []
    head = None
    heads = [hashlib.sha256(b"genesis").hexdigest()]
    for i in range(n):
        d = work / "evidence" / f"run-{i:04d}"
        d.mkdir(parents=True)
        manifest = json.dumps({"run": i, "subjects": [f"recipe-{i % 10}"], "pad": "x" * 2000})
        (d / "manifest.json").write_text(manifest + "\n")
        digest = hashlib.sha256((manifest + "\n").encode()).hexdigest()
        sums.append(f"{digest}  {d / 'manifest.json'}")
        length = i // 2 + 1
        grew = length > len(heads) - 1
        previous = heads[-1]
        if grew:
            heads.append(hashlib.sha256(f"row {length}".encode()).hexdigest())
        chain = {"head": heads[-1], "length": length}
        if i:
            chain["at_previous"] = previous if grew else None
        entry = {
            "v": 1,
            "run_id": f"run-{i:04d}",
            "suite": "weekly",
            "verdict": "PASSED",
            "manifest_sha256": digest,
            "envelope_sha256": None,
            "chain": chain,
            "time": f"2026-01-01T00:00:{i % 60:02d}Z",
        }
        lines.append(entry_line(entry))
        tree = merkle.Tree.of_entries(lines)
        note = sign_note(checkpoint_body(ORIGIN, tree.size, tree.root()), ORIGIN, key)
        head = repo.commit(head, b"".join(x + b"\n" for x in lines), note, f"evidence run-{i}")
    (work / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(clone)], check=True)
    return clone, pub, work / "SHA256SUMS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=int(os.environ.get("BENCH_LOG_N", 520)))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="canon-bench-log-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        clone, pub, sums = build(work, a.entries)
        print(f"built a log of {a.entries} entries in {time.perf_counter() - t0:.1f} s")
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        base = best(
            a.repeat,
            lambda: subprocess.run(["sha256sum", "-c", "--quiet", str(sums)], check=True),
        )

        def in_process() -> None:
            claims = log_claims(clone, key=pub, remember=False)
            bad = [c for c in claims if not c.ok]
            assert not bad, bad

        inproc = best(a.repeat, in_process)
        argv = [sys.executable, "-m", "canonlib", "verify", "--log", str(clone), "--key", str(pub)]

        def child() -> None:
            r = subprocess.run(argv, capture_output=True, text=True, env=env)
            assert r.returncode == 0, r.stdout + r.stderr

        proc = best(a.repeat, child)
        load = os.getloadavg()[0]
        print(f"load average {load:.1f}; best of {a.repeat}")
        print(f"sha256sum -c over {a.entries} manifests     {base * 1000:8.1f} ms  (baseline)")
        print(
            f"log_claims() in-process               {inproc * 1000:8.1f} ms  = {inproc / base:.1f}x"
        )
        print(f"canon verify --log CLONE --key PUB    {proc * 1000:8.1f} ms  = {proc / base:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
