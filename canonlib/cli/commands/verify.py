"""``canon verify``: re-check an evidence dir from cold, and the evidence log."""

from __future__ import annotations

import argparse
from pathlib import Path

from canonlib.cli.common import config_of, warn_if_behind
from canonlib.cli.style import (
    add_json,
    add_quiet_failed,
    print_claims,
)
from canonlib.errors import UsageError
from canonlib.evidence.log import log_claims
from canonlib.evidence.verify import (
    newer_format_line,
    not_evidence,
    unchecked,
    unchecked_line,
    verify,
)


def cmd_verify(args: argparse.Namespace) -> int:
    if args.dir is None and args.log is None:
        raise UsageError("canon verify needs an evidence DIR, or --log CLONE (or both)")
    state = args.state_dir or (config_of(args).state_dir if args.state else None)
    if args.state and not args.state_dir:  # checked against the live registry: say if it is behind
        warn_if_behind(config_of(args))
    claims = []
    if args.dir is not None:
        claims += verify(
            args.dir,
            state=state,
            upstream=args.upstream,
            key=args.key,
            require_signature=args.require_signature,
            log=args.log,
            strict=args.strict,
        )
    if args.log is not None:
        claims += log_claims(args.log, args.key)
    names = unchecked(
        key=args.key is not None,
        upstream=args.upstream or args.dir is None,
        log=args.log is not None,
    )
    rc = print_claims(claims, args)
    newer = newer_format_line(args.dir) if args.dir is not None else None
    if not args.json:  # --json: the claims alone
        if newer:
            print(newer)
        print(unchecked_line(names))
    # a dir that holds no canon manifest is not evidence (2); one from a newer canon: its
    # pages are not checked here, which is not a tamper (1) either
    if not_evidence(claims):
        return 2
    return rc or (2 if newer else 0)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ve = sub.add_parser(
        "verify",
        help="re-check an evidence dir from cold, with nothing but the dir",
        description=(
            "Re-check every claim of an evidence dir from the dir alone (no config, no state, "
            "any machine): file hashes, the suite complete, every notebook complete, what each "
            "notebook shows re-derived from the bundled registry, labels, the promotion chain, "
            "the proofs, commit == tag from the bundled refs, the verdict, the dir's entry in the "
            "evidence log (log.proof). One line per claim; exit 1 if any fails, 2 if DIR holds no "
            "readable canon manifest (not evidence) or was written by a newer canon (its pages "
            "are in a format this canon does not know); the last line names the checks that "
            "were not run. A FAILED week still verifies: the verdict line says FAILED. With --log "
            "CLONE (a git clone of the evidence log), also the whole log: its root, every "
            "checkpoint a prefix of the next, the registry chain never going backwards, and the "
            "checkpoint seen last time (a fork fails)."
        ),
    )
    ve.add_argument("dir", type=Path, nargs="?", help="the evidence dir (a copy anywhere will do)")
    ve.add_argument(
        "--state",
        action="store_true",
        help="also check against the live registry of --config's state dir: it still holds "
        "the run's chain and rows (a rollback or rewrite fails, naming the row)",
    )
    ve.add_argument(
        "--state-dir", type=Path, metavar="DIR", help="like --state, with this state dir"
    )
    ve.add_argument(
        "--upstream",
        action="store_true",
        help="also re-list each canonical's tag from its upstream (git ls-remote)",
    )
    ve.add_argument(
        "--key",
        type=Path,
        metavar="PUBFILE",
        help="ed25519 public key (PEM) the manifest's DSSE signature and the log's checkpoints "
        "must verify with",
    )
    ve.add_argument(
        "--log",
        type=Path,
        metavar="CLONE",
        help="a git clone of the evidence log: check the whole log, and that DIR is in it; the "
        "last checkpoint seen is remembered under $XDG_CACHE_HOME/canon (trust on first use)",
    )
    ve.add_argument(
        "--require-signature",
        action="store_true",
        help="fail when the dir is unsigned or the signature is not checked",
    )
    ve.add_argument(
        "--strict",
        action="store_true",
        help="fail when the signature, the upstream tags or the log were not checked "
        "(no --key, --upstream, --log)",
    )
    add_quiet_failed(ve)
    add_json(ve, "the claims, a list")
    ve.set_defaults(func=cmd_verify)
