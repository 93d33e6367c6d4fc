"""Claims: what ``verify``, ``doctor`` and ``systemd verify`` check, one statement each.

A leaf module: it imports nothing of canon's, so every side (cli, demo,
evidence, doctor, systemd) can use it without an import circle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict


class ClaimJSON(TypedDict):
    """A claim as JSON: ``--json``, and a notebook's record of it (``evidence.records``)."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Claim:
    """One checked statement: its name, whether it holds, and the detail a reviewer needs."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> ClaimJSON:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def claim_lines(claims: Iterable[Claim]) -> list[str]:
    """One line per claim, then a count: ``ok    name: detail`` / ``FAIL  name: detail``."""
    claims = list(claims)
    lines = [f"{'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}" for c in claims]
    failed = sum(not c.ok for c in claims)
    lines.append(f"{len(claims) - failed} passed, {failed} failed")
    return lines
