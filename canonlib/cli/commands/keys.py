"""``canon keys init``: the evidence signing key."""

from __future__ import annotations

import argparse

from canonlib.cli.common import config_of
from canonlib.cli.style import (
    add_json,
    print_json,
)
from canonlib.evidence.signing import init_keys


def cmd_keys_init(args: argparse.Namespace) -> int:
    kp = init_keys(config_of(args).state_dir)
    if args.json:
        print_json({"private": str(kp.private), "public": str(kp.public)})
        return 0
    print(f"private key: {kp.private} (0600; keep it on this machine)")
    print(f"public key:  {kp.public}")
    print(
        "every evidence run now writes manifest.dsse.json beside manifest.json; "
        "commit the public key to the fleet repo so reviewers can run: "
        f"canon verify --key {kp.public.name} DIR"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ke = sub.add_parser("keys", help="the evidence signing key")
    kesub = ke.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    ki = kesub.add_parser(
        "init",
        help="make an ed25519 key pair in the state dir; evidence runs then sign their manifest",
    )
    add_json(ki, "the key files' paths")
    ki.set_defaults(func=cmd_keys_init)
