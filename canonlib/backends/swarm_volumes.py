"""A swarm slot's named volumes archived and refilled (L3 backup/restore) through a helper.

``docker run --rm -v <vol>:/v <helper> tar …``: each volume is one ``<vol>.tar`` in
``<slot dir>/snapshots/<snapshot>``; a restore empties the volume and unpacks the
archive into it, creating a volume the slot lost with the stack's own labels so the
next deploy adopts it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from canonlib.backends.base import BackendError
from canonlib.backends.compose import stack_name
from canonlib.backends.swarm_docker import Docker, label_args


class Volumes:
    """The slot's volumes, by their labels; archives kept under the slot's directory."""

    def __init__(self, docker: Docker, helper_image: str):
        self.docker = docker
        self.helper_image = helper_image

    def names(self, sel: Mapping[str, str]) -> list[str]:
        """The volumes carrying every label in ``sel``, sorted."""
        return sorted(self.docker.ids("volume", sel, "volumes"))

    def archive(self, volumes: list[str], snapshots: Path) -> str:
        """Each of ``volumes`` archived (tar) into a new snapshot under ``snapshots``; its name."""
        snap = f"{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
        dest = snapshots / snap
        dest.mkdir(parents=True)
        for vol in volumes:
            with open(dest / f"{vol}.tar", "wb") as f:
                self._helper(
                    ["-v", f"{vol}:/v:ro"],
                    ["tar", "-C", "/v", "-cf", "-", "."],
                    step="snapshot",
                    stdout=f,
                )
        return snap

    def refill(self, src: Path, have: set[str], slot: str, labels: Mapping[str, str]) -> None:
        """Each volume archived in ``src`` emptied and unpacked again; one not in ``have`` is
        created first, with ``labels`` and the stack's namespace (the next deploy adopts it)."""
        for archive in sorted(src.glob("*.tar")):
            vol = archive.stem
            if vol not in have:  # the stack's own labels, so the next deploy adopts it
                own = {**labels, "com.docker.stack.namespace": stack_name(slot)}
                self.docker.run("volume", "create", *label_args(own), vol, step="restore")
            with open(archive, "rb") as f:
                self._helper(
                    ["-v", f"{vol}:/v"],
                    ["sh", "-c", "cd /v && rm -rf -- * .[!.]* ..?* && tar -xf -"],
                    step="restore",
                    stdin=f,
                )

    def _helper(
        self,
        mounts: list[str],
        cmd: list[str],
        *,
        step: str,
        stdout: IO[bytes] | None = None,
        stdin: IO[bytes] | None = None,
    ) -> None:
        """``cmd`` in a throwaway helper container with ``mounts``, bytes through stdin/stdout."""
        argv = [
            *self.docker.argv0,
            "run",
            "--rm",
            "-i",
            "--label",
            "canon.made-by=canon",
            *mounts,
            self.helper_image,
            *cmd,
        ]
        proc = subprocess.run(
            argv,
            stdout=stdout or subprocess.PIPE,
            stdin=stdin or subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=self.docker.timeout_s * 5,
        )
        if proc.returncode != 0:
            raise BackendError(
                step,
                f"helper {self.helper_image} {' '.join(cmd[:3])} exited {proc.returncode}: "
                f"{proc.stderr.decode(errors='replace').strip()[-400:]}",
            )


def snapshot_dir(snapshots: Path, slot: str, snapshot: str) -> Path:
    """The directory of ``snapshot`` under ``snapshots``, or an error when there is none."""
    src = snapshots / snapshot
    if not src.is_dir() or "/" in snapshot or snapshot.startswith("."):
        raise BackendError("restore", f"slot {slot} has no snapshot {snapshot!r}")
    return src
