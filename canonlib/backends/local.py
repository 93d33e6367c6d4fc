"""The embedded local backend: a slot is a directory, its processes are real children.

    <root>/<slot>/app/            the recipe's files at the exact commit (no .git)
    <root>/<slot>/data/           the app's data (kept across upgrades)
    <root>/<slot>/secrets/<name>  generated secrets, mode 0600
    <root>/<slot>/deps/<name>/    provisioned dependencies
    <root>/<slot>/snapshots/<id>/ copies of data/
    <root>/<slot>/.env            .env.sample + the meta's ENV_OVERLAY
    <root>/<slot>/deployed.json   recipe, version, commit, state
    <root>/<slot>/canon-slot.json the slot's marker (who made it, its role)

A slot whose marker says ``canonical`` is never torn down: a canonical is
retired by re-marking it ``retired`` first (promote does that, and only for
the previous canonical of the same recipe).

Install steps and command probes run with ``sh -c`` in ``app/``, with the
slot's paths and .env values in their environment, in the box
(:mod:`canonlib.backends.boxed`): only their own slot is writable, canon's state,
the other slots, the evidence, the fleet and the config are behind decoys, and an
attempt to write there fails the step, naming the path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Unpack

from canonlib.backends.base import BackendError, SilentServers, SlotRecord, refuse_canonical
from canonlib.backends.boxed import OutsideSlot, find_bwrap, run_boxed
from canonlib.backends.common import (
    BackendUnavailable,
    generate_secret,
    parse_env,
    probe_once,
    read_env_file,
    read_record,
    render_env,
    wait_probes,
)
from canonlib.backends.compose import env_sample, parse_compose_files
from canonlib.config import Config
from canonlib.files import tree_size, write_atomic
from canonlib.recipe.meta import RecipeMeta
from canonlib.state.marker import MARKER_FILE, MarkerProblem, SlotMarker, read_marker

_SLOT = re.compile(r"[a-z0-9][a-z0-9._-]{0,150}", re.ASCII)


def copy_recipe_tree(src: Path, dest: Path, recipe: str) -> None:
    """Copy a checkout without .git; refuse symlinks that lead out of the recipe tree."""
    root = src.resolve()
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = Path(dirpath).relative_to(src)
        if ".." in rel_dir.parts:
            raise BackendError("deploy", f"{recipe}: refusing path with '..': {rel_dir}")
        dirnames[:] = [d for d in dirnames if not (rel_dir == Path(".") and d == ".git")]
        (dest / rel_dir).mkdir(parents=True, exist_ok=True)
        for name in dirnames + filenames:
            s, d = Path(dirpath) / name, dest / rel_dir / name
            if s.is_symlink():
                target = os.readlink(s)
                resolved = (s.parent / target).resolve()
                if resolved != root and root not in resolved.parents:
                    raise BackendError(
                        "deploy",
                        f"{recipe}: {rel_dir / name} is a symlink out of the recipe tree "
                        f"({target}); refused",
                    )
                if name in dirnames:
                    dirnames.remove(name)  # never descend through a link
                os.symlink(target, d)
            elif name in filenames:
                shutil.copy2(s, d, follow_symlinks=False)


class LocalBackend(SilentServers):
    name = "local"

    def __init__(self, root: str | Path, *, guarded: tuple[Path, ...] = ()):
        """Slots under ``root``; recipe code in the box never sees ``root`` (the other slots)
        nor ``guarded`` (canon's other paths) but through a decoy."""
        self.root = Path(root)
        self.guarded = (Path(root), *guarded)

    @classmethod
    def from_config(cls, config: Config) -> LocalBackend:
        """The backend canon runs: its box guards the state dir (registry, keys, mirrors),
        the slots, the evidence, the evidence log, the fleet and the config file."""
        paths = [config.state_dir, config.evidence_dir, config.log_repo, config.fleet]
        return cls(config.slots_dir, guarded=tuple(paths + ([config.path] if config.path else [])))

    def _slot(self, slot: str) -> Path:
        if not _SLOT.fullmatch(slot) or ".." in slot:
            raise BackendError("slot", f"invalid slot name {slot!r}")
        return self.root / slot

    # -- install ---------------------------------------------------------------
    def provision(self, slot: str, checkout: Path, meta: RecipeMeta) -> None:
        find_bwrap("provision")  # no box, no install: an ERROR before anything is made
        d = self._slot(slot)
        for sub in ("data", "secrets", "deps", "snapshots"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d / "secrets", 0o700)
        for name in meta.SECRETS:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise BackendError(
                    "provision", f"{meta.recipe}: bad secret name {name!r} in {meta.path}"
                )
        for name, generator in meta.SECRETS.items():
            path = d / "secrets" / name
            if not path.exists():  # an existing secret is kept: upgrades keep their secrets
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(generate_secret(generator))
        for dep in meta.DEPS:
            if not _SLOT.fullmatch(dep):
                raise BackendError("provision", f"{meta.recipe}: bad dependency name {dep!r}")
            (d / "deps" / dep).mkdir(exist_ok=True)

    def deploy(
        self, slot: str, checkout: Path, meta: RecipeMeta, *, version: str, commit: str
    ) -> None:
        d = self._slot(slot)
        if not (d / "data").is_dir():
            raise BackendError("deploy", f"slot {slot} is not provisioned")
        new = d / "app.new"
        shutil.rmtree(new, ignore_errors=True)
        try:
            copy_recipe_tree(Path(checkout), new, meta.recipe)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        overlay = {"STACK_NAME": slot, **meta.ENV_OVERLAY}
        try:  # the compose files it would deploy must at least parse (docker is not needed here)
            env_text = render_env(env_sample(new), overlay)
            parse_compose_files(new, parse_env(env_text, what=".env.sample"), version)
        except BackendError:
            shutil.rmtree(new, ignore_errors=True)
            raise
        write_atomic(d / ".env", env_text)
        old = d / "app.old"
        shutil.rmtree(old, ignore_errors=True)
        if (d / "app").exists():
            (d / "app").rename(old)
        new.rename(d / "app")
        shutil.rmtree(old, ignore_errors=True)
        self._write_state(
            slot,
            recipe=meta.recipe,
            version=version,
            commit=commit,
            state="deployed",
            deployed_at=time.time(),
        )

    def run_install_steps(self, slot: str, meta: RecipeMeta) -> None:
        env = self.slot_env(slot)
        for i, step in enumerate(meta.INSTALL_STEPS, start=1):
            r = self._run_boxed(
                slot,
                step,
                env=env,
                timeout=meta.DEPLOY_TIMEOUT_S,
                step="install",
                what=f"{meta.recipe}: step {i} {step!r} in slot {slot}",
            )
            if r.returncode != 0:
                raise BackendError(
                    "install",
                    f"{meta.recipe}: step {i} {step!r} exited {r.returncode}: "
                    f"{r.stdout[-500:].strip()}",
                )

    def wait_ready(self, slot: str, meta: RecipeMeta) -> None:
        env = self.slot_env(slot)

        def run(cmd: str, timeout: float) -> subprocess.CompletedProcess[str]:
            return self._run_boxed(
                slot,
                cmd,
                env=env,
                timeout=timeout,
                step="ready",
                what=f"{meta.recipe}: probe {cmd!r} in slot {slot}",
            )

        def check(probe: Mapping[str, object]) -> str | None:
            # a write outside the slot is red at once, a missing box no verdict: never retried
            fatal = (OutsideSlot, BackendUnavailable)
            return probe_once(probe, cwd=None, env=env, run=run, fatal=fatal)

        wait_probes(
            list(meta.READY_PROBES),
            cwd=None,
            env=env,
            deadline_s=meta.DEPLOY_TIMEOUT_S,
            slot=slot,
            check=check,
        )

    def _run_boxed(
        self,
        slot: str,
        cmd: str,
        *,
        env: Mapping[str, str],
        timeout: float,
        step: str,
        what: str,
    ) -> subprocess.CompletedProcess[str]:
        """``cmd`` in the box of ``slot``, from its ``app/``: (result, paths written outside)."""
        d = self._slot(slot)
        return run_boxed(
            cmd,
            slot_dir=d,
            cwd=d / "app",
            env=env,
            timeout=timeout,
            step=step,
            guarded=self.guarded,
            what=what,
        )

    # -- data ------------------------------------------------------------------
    def snapshot(self, slot: str) -> str:
        d = self._slot(slot)
        snap = f"{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
        shutil.copytree(d / "data", d / "snapshots" / snap, symlinks=True)
        return snap

    def restore(self, slot: str, snapshot: str) -> None:
        d = self._slot(slot)
        src = d / "snapshots" / snapshot
        if not src.is_dir() or "/" in snapshot or snapshot.startswith("."):
            raise BackendError("restore", f"slot {slot} has no snapshot {snapshot!r}")
        shutil.rmtree(d / "data", ignore_errors=True)
        shutil.copytree(src, d / "data", symlinks=True)

    def wipe_data(self, slot: str) -> None:
        d = self._slot(slot)
        shutil.rmtree(d / "data", ignore_errors=True)
        (d / "data").mkdir()

    # -- lifecycle ---------------------------------------------------------------
    def undeploy(self, slot: str) -> None:
        if self.deployed(slot):
            self._write_state(slot, state="undeployed")

    def teardown(self, slot: str) -> None:
        refuse_canonical(slot, self.marker(slot))
        shutil.rmtree(self._slot(slot), ignore_errors=True)

    # -- markers -------------------------------------------------------------------
    def mark(self, slot: str, marker: SlotMarker) -> None:
        """Write ``marker`` into the slot (creating the slot dir), atomically."""
        d = self._slot(slot)
        d.mkdir(parents=True, exist_ok=True)
        write_atomic(d / MARKER_FILE, json.dumps(marker.to_dict(), indent=1, sort_keys=True))

    def marker(self, slot: str) -> SlotMarker | None:
        """The slot's marker (None when it has none); BackendError naming the slot and the
        file when it is not one canon would write (read as untrusted: a recipe's code ran
        in the slot)."""
        try:
            return read_marker(self._slot(slot) / MARKER_FILE, slot)
        except MarkerProblem as e:
            raise BackendError("marker", str(e)) from None

    def scan_markers(self) -> tuple[dict[str, SlotMarker], dict[str, str]]:
        """(every slot's readable marker, one line per slot whose marker is not)."""
        out, bad = {}, {}
        for slot in self.slots():
            try:
                m = read_marker(self._slot(slot) / MARKER_FILE, slot)
            except (MarkerProblem, BackendError) as e:
                bad[slot] = str(e)
                continue
            if m is not None:
                out[slot] = m
        return out, bad

    def markers(self) -> dict[str, SlotMarker]:
        """Every slot's marker; a slot without one (made by an older canon), or whose marker is
        unreadable (see :meth:`scan_markers`), is left out."""
        return self.scan_markers()[0]

    def deployed(self, slot: str) -> SlotRecord | None:
        # in the slot, where the release's own code may write: read as untrusted
        return read_record(self._slot(slot) / "deployed.json")

    def slot_env(self, slot: str) -> dict[str, str]:
        d = self._slot(slot)
        env_file = d / ".env"
        env = read_env_file(env_file)
        env.update(
            CANON_BACKEND="local",
            CANON_SLOT=slot,
            CANON_SLOT_DIR=str(d),
            CANON_APP_DIR=str(d / "app"),
            CANON_DATA_DIR=str(d / "data"),
            CANON_SECRETS_DIR=str(d / "secrets"),
        )
        return env

    def disk_usage(self, slot: str | None = None) -> int:
        path = self._slot(slot) if slot else self.root
        return tree_size(path) if path.exists() else 0

    def slots(self) -> list[str]:
        return (
            sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.exists() else []
        )

    def _write_state(self, slot: str, **fields: Unpack[SlotRecord]) -> None:
        d = self._slot(slot)
        state = self.deployed(slot) or SlotRecord()
        state.update(fields)
        write_atomic(d / "deployed.json", json.dumps(state, indent=1, sort_keys=True))
