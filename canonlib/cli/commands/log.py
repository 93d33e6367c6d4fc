"""``canon log status|append|push``: the evidence log this machine writes."""

from __future__ import annotations

import argparse
from pathlib import Path

from canonlib.cli.common import config_of
from canonlib.cli.style import (
    add_json,
    print_json,
    print_lines,
)
from canonlib.errors import UsageError
from canonlib.evidence import log, manifest


def cmd_log_status(args: argparse.Namespace) -> int:
    st = log.status(config_of(args))
    if args.json:
        print_json(st)
        return 0
    head = f"log:     {st['path']} (origin {st['origin']})"
    if not st["size"]:
        print_lines([head, "entries: none yet (every evidence run appends one)"])
        return 0
    signed = "signed" if st["signed"] else "UNSIGNED (no key: `canon keys init`)"
    last = st["last"]
    said = (
        f"run {last['run_id']} suite {last['suite']} {last['verdict']} {last['time']}"
        if last
        else "none"
    )
    print_lines(
        [
            head,
            f"entries: {st['size']}, checkpoint root {st['root']} ({signed})",
            f"last:    {said}",
            f"push:    {st['push'] or 'none (set log.push in canon.toml to publish it)'}",
            "a reviewer clones the published log once, then every week: "
            "git -C CLONE pull && canon verify --log CLONE --key canon.pub",
        ]
    )
    return 0


def _dir_arg(d: Path) -> Path:
    if not (d / "manifest.json").is_file():
        raise UsageError(f"{d}: not an evidence dir (no manifest.json)")
    return d


def cmd_log_append(args: argparse.Namespace) -> int:
    config = config_of(args)
    proof = log.append(config, _dir_arg(args.dir))
    if args.json:
        print_json(proof)
        return 0
    print(f"{args.dir}: entry {proof['index']} of {config.log_repo}; wrote {manifest.LOG_PROOF}")
    return 0


def cmd_log_push(args: argparse.Namespace) -> int:
    config = config_of(args)
    url = log.push(config)
    if args.json:
        print_json({"path": str(config.log_repo), "pushed_to": url})
        return 0
    print(f"pushed {config.log_repo} to {url}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lo = sub.add_parser(
        "log",
        help="the evidence log: an append-only, signed git repo reviewers clone",
        description=(
            "Every evidence run appends one line to the evidence log (a bare git repo, log.path "
            "in canon.toml, default <state>/log.git) and a new signed checkpoint, and writes "
            "log.proof into its dir. Publish the log (log.push) so reviewers can clone it and run "
            "`canon verify --log CLONE`: a registry rolled back, a row deleted or the log "
            "rewritten then fails for them, even though this machine's operator did it."
        ),
    )
    losub = lo.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    st = losub.add_parser("status", help="where the log is, its size, last entry and checkpoint")
    add_json(st, "path, origin, size, root, signed, push, last")
    st.set_defaults(func=cmd_log_status)
    ap = losub.add_parser(
        "append",
        help="append an evidence dir the run could not append (the run said why)",
        description=(
            "Append an evidence dir that is not in the log yet, e.g. when the log was unwritable "
            "during its run. Refused when the dir is in the log already, or when a run that "
            "finished after it is (a log only grows forward): such a dir stays outside the log, "
            "and `canon verify DIR` says so."
        ),
    )
    ap.add_argument("dir", type=Path, help="the evidence dir")
    add_json(ap, "the dir's log proof")
    ap.set_defaults(func=cmd_log_append)
    pu = losub.add_parser("push", help="push the log to log.push (after a push that failed)")
    add_json(pu, "the log's path and where it was pushed")
    pu.set_defaults(func=cmd_log_push)
