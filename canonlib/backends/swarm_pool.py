"""Several Docker Swarm servers as one backend: each slot lives on one server, found by its marker.

``[backend] servers = ["s1", "s2", …]`` names docker contexts, each the manager of a swarm of
its own (a *server*, as abra says).  :class:`SwarmPool` is a
:class:`~canonlib.backends.base.Backend` over one :class:`~.swarm.SwarmBackend` per server:

- reading (``markers``, ``slots``) asks every server that answers; a server that does not is
  listed in :attr:`SwarmPool.unreachable` with why, and its slots are simply not seen (never
  taken as gone: nothing is deleted, nothing re-promoted from their absence);
- a slot canon already knows goes to the server it lives on (its marker says which); a new
  slot goes to the pool's *target* (``pool.on(server)``, else the first server): the sweep picks it
  (:func:`canonlib.sweep.schedule.home`), a cold run's harness gets its server from the sweep
  (``CANON_SERVER``) and talks to that server alone;
- :meth:`SwarmPool.check_engine` checks every server (a context that does not exist, an engine
  that is not a swarm manager: one line naming it) and refuses two servers that are the same
  swarm (their cluster ids).
"""

from __future__ import annotations

import time
from pathlib import Path

from canonlib.backends.base import BackendError, SlotRecord
from canonlib.backends.common import BackendUnavailable
from canonlib.backends.swarm import SwarmBackend
from canonlib.config import Config, ConfigError
from canonlib.recipe.meta import RecipeMeta
from canonlib.state.marker import SlotMarker


def duplicate_clusters(cluster_ids: dict[str, str]) -> list[tuple[str, str]]:
    """Pairs of servers that are the same swarm (server -> swarm cluster id)."""
    seen: dict[str, str] = {}
    pairs = []
    for server, cid in cluster_ids.items():
        if cid in seen:
            pairs.append((seen[cid], server))
        else:
            seen[cid] = server
    return pairs


class SwarmPool:
    """The swarm backend on several servers (docker contexts); ``server``: where new slots go."""

    name = "swarm"

    def __init__(
        self,
        backends: dict[str, SwarmBackend],
        *,
        server: str | None = None,
        _where: dict[str, str] | None = None,
        _unreachable: dict[str, str] | None = None,
    ):
        if not backends:
            raise BackendError("config", "backend.servers is empty: list at least one server")
        self.backends = backends
        self.servers = list(backends)
        self.server = server
        self._where = {} if _where is None else _where  # slot -> server, learnt from markers
        self.unreachable = {} if _unreachable is None else _unreachable  # server -> why
        self._asked: dict[str, float] = {}  # server -> when answers() last asked it

    @classmethod
    def from_config(cls, config: Config, *, run_dir: Path | None = None) -> SwarmPool:
        return cls(
            {
                s: SwarmBackend.from_config(config, run_dir=run_dir, server=s)
                for s in config.backend["servers"]
            }
        )

    def on(self, server: str) -> SwarmPool:
        """The same pool, with new slots going to ``server``."""
        if server not in self.backends:
            raise BackendError("config", f"server {server!r} is not in backend.servers")
        return SwarmPool(
            self.backends, server=server, _where=self._where, _unreachable=self.unreachable
        )

    # -- the servers -------------------------------------------------------------------
    def check_engine(self) -> None:
        """Every server answers as a swarm manager, and no two are the same swarm (doctor)."""
        for s, b in self.backends.items():
            try:
                b.check_engine()
            except BackendUnavailable as e:
                raise BackendUnavailable(
                    "swarm", f"server {s}: {e.args[0].split(': ', 1)[-1]}"
                ) from None
        self.check_distinct()

    def check_distinct(self) -> None:
        """Refuse (:class:`ConfigError`, exit 2) two answering servers that are the same swarm."""
        ids = {s: b.docker.cluster_id() for s, b in self._answering()}
        same = duplicate_clusters(ids)
        if same:
            a, b = same[0]
            raise ConfigError(
                f"backend.servers: {a} and {b} are the same swarm (cluster id {ids[a][:12]}): "
                "each server must be a swarm of its own; drop one of them"
            )

    def answers(self, server: str, max_age_s: float = 5.0) -> str | None:
        """None when ``server`` answers as a swarm manager; else why not.  Asked again at most
        every ``max_age_s`` (a sweep asks before each turn, and for each canonical's row)."""
        now = time.monotonic()
        asked = self._asked.get(server)
        if asked is not None and now - asked < max_age_s:
            return self.unreachable.get(server)
        b = self.backends[server]
        b.docker._swarm_checked = False
        try:
            b.check_engine()
        except BackendUnavailable as e:
            self.unreachable[server] = e.args[0].split(": ", 1)[-1]
        else:
            self.unreachable.pop(server, None)
        self._asked[server] = time.monotonic()
        return self.unreachable.get(server)

    def server_of(self, slot: str) -> str | None:
        """The server ``slot`` lives on, as its marker said (None when not seen)."""
        return self._where.get(slot)

    def _answering(self) -> list[tuple[str, SwarmBackend]]:
        """The servers that answer now; the others noted in :attr:`unreachable`."""
        out = []
        for s, b in self.backends.items():
            try:
                b.check_engine()
            except BackendUnavailable as e:
                self.unreachable[s] = e.args[0].split(": ", 1)[-1]
                continue
            self.unreachable.pop(s, None)
            out.append((s, b))
        return out

    def _of(self, slot: str, *, new: bool = False) -> SwarmBackend:
        server = self._where.get(slot)
        if server is None:
            self.markers()  # learn where the slots are
            server = self._where.get(slot)
        if server is None and new:  # a pool no one chose a server for: the first
            server = self._where[slot] = self.server or self.servers[0]
        if server is None:
            down = f" (not answering: {', '.join(self.unreachable)})" if self.unreachable else ""
            raise BackendError("slot", f"slot {slot} is on none of the servers{down}")
        if server in self.unreachable and not new:
            b = self.backends[server]
            b.docker._swarm_checked = False  # ask again: it may be back
        return self.backends[server]

    # -- records -----------------------------------------------------------------------
    def scan_markers(self) -> tuple[dict[str, SlotMarker], dict[str, str]]:
        """Every answering server's readable markers, and one line per unreadable one."""
        out: dict[str, SlotMarker] = {}
        bad: dict[str, str] = {}
        for s, b in self._answering():
            try:
                found, unreadable = b.scan_markers()
            except BackendUnavailable as e:
                self.unreachable[s] = e.args[0].split(": ", 1)[-1]
                continue
            for slot, m in found.items():
                out[slot] = m if m.server is not None else m.as_role(m.role, server=s)
                self._where[slot] = s
            bad.update({slot: f"{why} (server {s})" for slot, why in unreadable.items()})
        return out, bad

    def markers(self) -> dict[str, SlotMarker]:
        return self.scan_markers()[0]

    def marker(self, slot: str) -> SlotMarker | None:
        return self._of(slot).marker(slot)

    def slots(self) -> list[str]:
        out: list[str] = []
        for s, b in self._answering():
            for slot in b.slots():
                self._where.setdefault(slot, s)
                out.append(slot)
        return sorted(out)

    def mark(self, slot: str, marker: SlotMarker) -> None:
        if slot not in self._where and marker.server in self.backends:
            self._where[slot] = marker.server
        self._of(slot, new=True).mark(slot, marker)

    def deployed(self, slot: str) -> SlotRecord | None:
        try:
            return self._of(slot).deployed(slot)
        except BackendError:
            return None

    # -- the slot's life: on the server it lives on ----------------------------------------
    def provision(self, slot: str, checkout: Path, meta: RecipeMeta) -> None:
        self._of(slot, new=True).provision(slot, checkout, meta)

    def deploy(
        self, slot: str, checkout: Path, meta: RecipeMeta, *, version: str, commit: str
    ) -> None:
        self._of(slot, new=True).deploy(slot, checkout, meta, version=version, commit=commit)

    def run_install_steps(self, slot: str, meta: RecipeMeta) -> None:
        self._of(slot).run_install_steps(slot, meta)

    def wait_ready(self, slot: str, meta: RecipeMeta) -> None:
        self._of(slot).wait_ready(slot, meta)

    def snapshot(self, slot: str) -> str:
        return self._of(slot).snapshot(slot)

    def restore(self, slot: str, snapshot: str) -> None:
        self._of(slot).restore(slot, snapshot)

    def wipe_data(self, slot: str) -> None:
        self._of(slot).wipe_data(slot)

    def undeploy(self, slot: str) -> None:
        self._of(slot).undeploy(slot)

    def teardown(self, slot: str) -> None:
        self._of(slot).teardown(slot)

    def slot_env(self, slot: str) -> dict[str, str]:
        return self._of(slot).slot_env(slot)

    def disk_usage(self, slot: str | None = None) -> int:
        if slot is not None:
            return self._of(slot).disk_usage(slot)
        return next(iter(self.backends.values())).disk_usage()  # one work dir for all servers

    def purge(self) -> list[str]:
        return [slot for _, b in self._answering() for slot in b.purge()]
