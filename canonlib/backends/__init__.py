"""Deploy backends: where a recipe at one exact commit gets installed.

``local`` (embedded default, used by the demo and tests), ``swarm`` (a real
Docker Swarm through ``docker stack deploy``) and ``abra`` (real Co-op Cloud
through the abra CLI).  The cold run and the promote use the very
same backend calls: a promote is a faithful install, not a shortcut.
"""

from __future__ import annotations

from pathlib import Path

from canonlib.backends.abra import AbraBackend
from canonlib.backends.base import Backend, BackendError, refuse_canonical
from canonlib.backends.local import LocalBackend
from canonlib.backends.swarm import SwarmBackend
from canonlib.backends.swarm_pool import SwarmPool
from canonlib.config import Config

__all__ = [
    "Backend",
    "BackendError",
    "SwarmBackend",
    "SwarmPool",
    "make_backend",
    "make_swarm_backend",
    "on_server",
    "refuse_canonical",
]


def make_backend(
    config: Config, *, run_dir: Path | None = None, server: str | None = None
) -> Backend:
    """The configured backend; ``server`` (one of ``backend.servers``: a cold run's, given by
    the sweep) makes new slots go there, and on swarm talks to that server alone."""
    kind = config.backend.get("kind", "local")
    servers = config.backend.get("servers") or []
    if server is not None and server not in servers:
        raise BackendError("config", f"server {server!r} is not in backend.servers")
    if kind == "local":
        return LocalBackend.from_config(config)
    if kind == "abra":
        return AbraBackend.from_config(config, run_dir=run_dir, server=server)
    if kind == "swarm" and servers:
        if server is not None:
            return SwarmBackend.from_config(config, run_dir=run_dir, server=server)
        return SwarmPool.from_config(config, run_dir=run_dir)
    if kind == "swarm":
        return SwarmBackend.from_config(config, run_dir=run_dir)
    raise BackendError("config", f"unknown backend {kind!r}")


def make_swarm_backend(config: Config) -> SwarmBackend | SwarmPool:
    """:func:`make_backend` for a config of kind ``swarm``: what has the swarm-only calls
    (``check_engine``, ``purge``)."""
    backend = make_backend(config)
    if not isinstance(backend, SwarmBackend | SwarmPool):
        raise BackendError("config", f"backend {backend.name!r} is not a swarm")
    return backend


def on_server(backend: Backend, server: str) -> Backend:
    """``backend`` talking to ``server`` alone (the backends of several servers: abra, the swarm
    pool)."""
    if not isinstance(backend, AbraBackend | SwarmPool):
        raise BackendError("config", f"backend {backend.name!r} has no servers")
    return backend.on(server)
