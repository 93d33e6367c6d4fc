"""``canon evidence run|latest|open``: evidence runs and their dirs."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from canonlib.cli.common import config_of, require_current
from canonlib.cli.style import (
    add_json,
    print_json,
)
from canonlib.errors import UsageError
from canonlib.evidence.progress import stderr_out
from canonlib.evidence.report import INDEX, latest_dir, open_index
from canonlib.evidence.run import run_suite
from canonlib.sweep.orchestrate import raise_interrupted
from canonlib.term import visible


def cmd_evidence_run(args: argparse.Namespace) -> int:
    params = {}
    if args.target:
        params["target"] = str(args.target)
    if args.recipe:
        params["recipe"] = args.recipe
    if args.sweep_run:
        params["sweep_run_id"] = args.sweep_run
    for kv in args.param or []:
        key, sep, value = kv.partition("=")
        if not sep:
            raise UsageError(f"--param takes KEY=VALUE, got {kv!r}")
        params[key] = value
    if args.suite == "verify" and "target" not in params:
        raise UsageError("evidence run verify needs --target DIR (the evidence dir to verify)")

    config = config_of(args)
    if args.suite != "verify":  # the suites sweep and promote: not on a registry that is behind
        require_current(config, f"run the {args.suite} evidence suite")
    signal.signal(
        signal.SIGTERM, raise_interrupted
    )  # stop the whole tree, mark the dir interrupted

    progress = sys.stderr if args.json else sys.stdout  # --json: stdout holds the JSON alone
    ev = run_suite(
        config,
        args.suite,
        params=params,
        out=lambda line: print(visible(line), flush=True, file=progress),
        progress=stderr_out(),
    )
    week = ev.verdict
    assert week is not None  # run_suite finished the run (else it raised): its verdict is set
    if args.json:
        print_json(
            {
                "dir": str(ev.dir),
                "suite": ev.suite,
                "result": week.result,
                "failed_notebooks": week.failed_notebooks,
                "failing_rows": week.failing_rows,
                "notebooks": [
                    {"name": n.name, "ok": n.ok, "seconds": n.seconds, "problems": n.problems}
                    for n in ev.notebooks
                ],
            }
        )
    return week.exit_code


def _evidence_dir_arg(args: argparse.Namespace) -> Path:
    if args.dir is not None:
        if not (args.dir / "manifest.json").exists():
            raise UsageError(
                f"{args.dir}: not an evidence dir (no manifest.json); "
                "`canon evidence latest` prints the newest"
            )
        return Path(args.dir)
    config = config_of(args)
    d = latest_dir(config.evidence_dir)
    if d is None:
        raise UsageError(
            f"no evidence in {config.evidence_dir} yet: run `canon evidence run weekly`"
        )
    return d


def cmd_evidence_latest(args: argparse.Namespace) -> int:
    args.dir = None
    d = _evidence_dir_arg(args)
    if args.json:
        print_json({"dir": str(d)})
    else:
        print(d)
    return 0


def cmd_evidence_open(args: argparse.Namespace) -> int:
    d = _evidence_dir_arg(args)
    if not (d / INDEX).exists():
        raise UsageError(
            f"{d}: no index.html (written by evidence runs since reports began); "
            f"see {d / 'manifest.json'}"
        )
    path, opened = open_index(d)
    if args.json:
        print_json({"index": str(path), "opened": opened})
    else:
        print(path if opened else f"no display to open it on; the page is: {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = sub.add_parser(
        "evidence", help="run the evidence notebooks (papermill) into evidence/<run-id>/"
    )
    evsub = ev.add_subparsers(dest="evidence_command", metavar="ACTION", required=True)
    er = evsub.add_parser(
        "run",
        help="execute a suite of notebooks and write manifest.json",
        description="Execute a suite with papermill into <evidence_dir>/<run-id>/ and write an "
        "in-toto manifest with the sha256 of every file. Suites: weekly (sweep, determinism, "
        "disk_budget), proofs (tagged_promote, samever, disk_budget), all (both, plus "
        "investigate), investigate, verify (needs --target). Exit 1 (verdict FAILED) when any "
        "notebook or claim fails or a recorded sweep has a FAIL, ERROR or GREEN-BUT-PROMOTE-FAILED "
        "row; the last line printed is the evidence dir.",
    )
    er.add_argument(
        "suite",
        choices=["weekly", "proofs", "all", "investigate", "verify"],
        help="which notebooks to run",
    )
    er.add_argument("--target", help="verify: the evidence dir to verify")
    er.add_argument(
        "--recipe", help="proofs/investigate: the recipe to use (default: chosen from the registry)"
    )
    er.add_argument("--sweep-run", help="sweep notebook: read this sweep run instead of sweeping")
    er.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="any other notebook parameter"
    )
    add_json(er, "the run's dir, verdict and notebooks (progress goes to stderr)")
    er.set_defaults(func=cmd_evidence_run)

    el = evsub.add_parser("latest", help="print the newest evidence dir")
    add_json(el, "the dir")
    el.set_defaults(func=cmd_evidence_latest)
    eo = evsub.add_parser(
        "open",
        help="open an evidence dir's index.html (default: the newest)",
        description="Open DIR/index.html in a browser; with no display, print its path.",
    )
    eo.add_argument("dir", nargs="?", type=Path, help="an evidence dir (default: the newest)")
    add_json(eo, "the page's path and whether it was opened")
    eo.set_defaults(func=cmd_evidence_open)
