"""``canon config example``: an annotated canon.toml."""

from __future__ import annotations

import argparse

from canonlib.config import EXAMPLE


def cmd_config_example(args: argparse.Namespace) -> int:
    print(EXAMPLE, end="")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    co = sub.add_parser("config", help="configuration helpers")
    cosub = co.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    cosub.add_parser("example", help="print an annotated canon.toml").set_defaults(
        func=cmd_config_example
    )
