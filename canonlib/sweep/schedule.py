"""Several servers: which cold run goes first, on which server, and where a canonical lives.

Pure: values in, values out (no I/O, no clock), table-tested in tests/test_servers.py.
The sweep (:mod:`canonlib.sweep.orchestrate`) runs ``per_server`` workers per server; each
worker takes the next recipe of :func:`order` when it is free, so the runs are placed as
:func:`assign` models them: longest expected run first, onto the server that frees first
(list scheduling, LPT), and a sweep's wall time approaches total cold time / servers.

A canonical's server is not where its cold run ran: it is the recipe's *home*
(:func:`home`): where its canonical already is, else the meta's ``SERVER``, else the
server holding the fewest canonicals.  ``SERVER`` moves a canonical on its next promote.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from canonlib.errors import CanonError
from canonlib.state.row import ResultRow


class PlacementError(CanonError):
    """A recipe's ``SERVER`` (or its canonical's server) is not among the configured servers."""


def expected_durations(rows: Iterable[ResultRow]) -> dict[str, float]:
    """Each recipe's last cold-run time: ``duration_s`` of its newest result row that ran a cold
    run (``tested_commit`` set), rows oldest first as ``Registry.results`` returns them."""
    out: dict[str, float] = {}
    for r in rows:
        d = r.duration_s
        if r.tested_commit and d is not None and d >= 0:
            out[r.recipe] = float(d)
    return out


def order(recipes: Sequence[str], expected: Mapping[str, float]) -> list[str]:
    """Longest expected first; a recipe never cold-run yet counts as the longest known (it may
    be long, and started last it would hold the sweep's end); ties keep the given order."""
    longest = max(expected.values(), default=0.0)
    pos = {r: i for i, r in enumerate(recipes)}
    return sorted(recipes, key=lambda r: (-expected.get(r, longest), pos[r]))


@dataclass(frozen=True)
class Assignment:
    recipe: str
    server: str
    start_s: float  # modelled start, from the expected times
    end_s: float


def assign(
    recipes: Sequence[str],
    expected: Mapping[str, float],
    servers: Sequence[str],
    per_server: int = 1,
) -> list[Assignment]:
    """The model of a sweep's cold runs: :func:`order`, each run onto the first worker to free
    (``per_server`` workers per server, servers in config order breaking ties)."""
    if not servers or per_server < 1:
        raise ValueError("at least one server and one run per server")
    longest = max(expected.values(), default=0.0)
    free = [(0.0, i, k, s) for i, s in enumerate(servers) for k in range(per_server)]
    heapq.heapify(free)
    out = []
    for r in order(recipes, expected):
        at, i, k, s = heapq.heappop(free)
        end = at + expected.get(r, longest)
        out.append(Assignment(r, s, at, end))
        heapq.heappush(free, (end, i, k, s))
    return out


def makespan(plan: Sequence[Assignment]) -> float:
    return max((a.end_s for a in plan), default=0.0)


def home(
    recipe: str,
    servers: Sequence[str],
    *,
    pinned: str | None,
    current: str | None,
    held: Mapping[str, int],
) -> str:
    """The server ``recipe``'s canonical lives on after its next promote.

    ``pinned`` (the meta's ``SERVER``) wins; else ``current`` (where its canonical is now); else
    the server holding the fewest canonicals (``held``), the first in config order on a tie.
    Raises :class:`PlacementError` for a pin, or a current server, not in ``servers``."""
    if not servers:
        raise ValueError("no servers")
    if pinned is not None:
        if pinned not in servers:
            raise PlacementError(
                f"{recipe}: SERVER = {pinned!r} is not one of backend.servers "
                f"({', '.join(servers)}); fix its recipe_meta.py"
            )
        return pinned
    if current is not None:
        if current not in servers:
            raise PlacementError(
                f"{recipe}: its canonical lives on server {current!r}, which is not in "
                f"backend.servers ({', '.join(servers)})"
            )
        return current
    return min(servers, key=lambda s: (held.get(s, 0), servers.index(s)))


def orphaned(
    canonicals: Iterable[tuple[str, str | None]], servers: Sequence[str]
) -> dict[str, list[str]]:
    """Servers that hold canonicals but are not configured: ``{server: [recipe, …]}``
    (``canonicals``: (recipe, server) pairs; a canonical without a server is not counted)."""
    out: dict[str, list[str]] = {}
    for recipe, server in canonicals:
        if server is not None and server not in servers:
            out.setdefault(server, []).append(recipe)
    return {s: sorted(rs) for s, rs in sorted(out.items())}


def orphan_message(gone: Mapping[str, list[str]]) -> str:
    """One line for :func:`orphaned`'s servers (the caller exits 2)."""
    parts = [f"server {s} holds the canonicals of {', '.join(rs)}" for s, rs in gone.items()]
    return (
        f"{'; '.join(parts)}, but is not in backend.servers: put it back in canon.toml "
        "(set SERVER in a recipe's meta to move its canonical on its next promote)"
    )
