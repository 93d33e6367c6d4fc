"""``canon doctor``: check what the timer will see, before the timer sees it.

With ``--unit FILE`` the checks use the unit's ``Environment=`` (config,
fleet, PATH) and ``WorkingDirectory=`` instead of this shell's, so a tool that
is on your PATH but not on the timer's is caught here, not on Sunday night.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from canonlib.backends import make_swarm_backend
from canonlib.backends.boxed import find_bwrap
from canonlib.backends.common import BackendUnavailable
from canonlib.claims import Claim
from canonlib.config import Config, load_config
from canonlib.errors import CanonError, one_line
from canonlib.evidence.run import kernel_home
from canonlib.ops.systemd import read_unit, unit_environment
from canonlib.recipe.fleet import discover
from canonlib.state.disk import disk_report

T = TypeVar("T")

BASE_TOOLS = ("git", "sh")


def _env_for(unit: Path | None) -> tuple[dict[str, str], Path]:
    if unit is None:
        return dict(os.environ), Path.cwd()
    u = read_unit(unit)
    env = unit_environment(u)
    wd = Path((u.get("WorkingDirectory") or [str(Path.cwd())])[0])
    return env, wd


def _with_env(env: Mapping[str, str], fn: Callable[[], T]) -> T:
    """Run ``fn`` with exactly ``env`` as os.environ, so doctor reads config as the timer will."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return fn()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def doctor(config_path: str | None, unit: Path | None = None) -> list[Claim]:
    env, wd = _env_for(unit)
    claims: list[Claim] = []
    where = f"unit {unit}" if unit else "this shell"
    path = env.get("PATH", "")
    cwd = Path.cwd()
    try:
        os.chdir(wd)
        cfg: Config = _with_env(env, lambda: load_config(config_path if not unit else None))
        claims.append(
            Claim(
                "config valid",
                True,
                f"{cfg.path or 'no canon.toml (defaults + environment)'} ({where})",
            )
        )
    except CanonError as e:
        return [Claim("config valid", False, f"{e} ({where})")]
    finally:
        os.chdir(cwd)
    try:
        fleet = discover(cfg.fleet)
        fleet.require_enrolled()
        claims.append(
            Claim(
                "fleet found, enrolled set non-empty",
                True,
                f"{cfg.fleet} at {fleet.commit or 'no git commit'}: "
                f"{len(fleet.enrolled)} enrolled ({', '.join(r.name for r in fleet.enrolled)})",
            )
        )
    except CanonError as e:
        claims.append(Claim("fleet found, enrolled set non-empty", False, str(e)))
        fleet = None
    if fleet is not None:  # a broken meta drops its recipe from the enrolled set: say where
        broken = [r.error.removeprefix("meta: ") for r in fleet.broken if r.error]
        claims.append(
            Claim(
                "every recipe_meta.py loads",
                not broken,
                "; ".join(broken) or f"{len(fleet.recipes)} meta file(s) read",
            )
        )

    needs: dict[str, list[str]] = {t: ["canon"] for t in BASE_TOOLS}
    if cfg.backend.get("kind") == "abra":
        needs.setdefault(cfg.backend.get("abra", "abra"), []).append("the abra backend")
    for r in fleet.enrolled if fleet else []:
        for tool in r.meta.REQUIRES_TOOLS if r.meta else ():  # enrolled: it has one
            needs.setdefault(tool, []).append(r.name)
    for tool, who in sorted(needs.items()):
        found = shutil.which(tool, path=path)
        claims.append(
            Claim(
                f"tool {tool} on PATH",
                found is not None,
                f"{found}"
                if found
                else f"{tool} (needed by {', '.join(who)}) is not on the PATH of {where}: {path}",
            )
        )

    if cfg.backend.get("kind", "local") == "local":
        claims.append(_box_check(path, where))

    for label, d in (("state dir", cfg.state_dir), ("evidence dir", cfg.evidence_dir)):
        try:
            d.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=d, prefix=".doctor-"):
                pass
            claims.append(Claim(f"{label} writable", True, str(d)))
        except OSError as e:
            claims.append(Claim(f"{label} writable", False, f"{d}: {e}"))

    if cfg.backend.get("kind") == "swarm":  # each server a swarm manager, no two the same swarm
        what = "swarm servers answer as managers" if cfg.backend.get("servers") else "swarm answers"
        try:
            make_swarm_backend(cfg).check_engine()
            claims.append(Claim(what, True, ", ".join(cfg.backend.get("servers") or ["ok"])))
        except CanonError as e:
            claims.append(Claim(what, False, one_line(e)))

    claims.append(_kernel_check())
    claims.append(_disk_check(cfg))
    return claims


def _box_check(path: str, where: str) -> Claim:
    """The local backend runs recipe code only in bubblewrap's box: bwrap on PATH, and it starts."""
    name = "recipe code can be boxed (bubblewrap)"
    try:
        bwrap = find_bwrap("doctor", {"PATH": path})
    except BackendUnavailable as e:
        return Claim(name, False, f"{str(e).removeprefix('doctor: ')} ({where})")
    return Claim(name, True, f"{bwrap} starts a box")


def _kernel_check() -> Claim:
    """The evidence runs' kernelspec (``canon``, this Python) must start and import canonlib."""
    code = (
        "from jupyter_client.manager import start_new_kernel\n"
        "km, kc = start_new_kernel(kernel_name='canon', startup_timeout=60)\n"
        "r = kc.execute_interactive('import canonlib', timeout=60)\nkm.shutdown_kernel(now=True)\n"
        "print(r['content']['status'])\n"
    )
    with tempfile.TemporaryDirectory(prefix="canon-doctor-") as tmp:
        env = {**os.environ, "JUPYTER_PATH": str(kernel_home(Path(tmp)))}
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
            )
        except subprocess.TimeoutExpired:
            return Claim("a Jupyter kernel starts", False, "no kernel within 120s")
    ok = proc.returncode == 0 and proc.stdout.strip().endswith("ok")
    return Claim(
        "a Jupyter kernel starts",
        ok,
        "kernel ran `import canonlib`" if ok else proc.stderr.strip()[-300:],
    )


def _disk_check(cfg: Config) -> Claim:
    try:
        used = disk_report(cfg)["total"]
    except CanonError as e:
        return Claim("disk within budget", False, str(e))
    free = shutil.disk_usage(cfg.state_dir).free
    ok = used <= cfg.disk_budget_bytes and free >= cfg.disk_budget_bytes - used
    return Claim(
        "disk within budget",
        ok,
        f"canon uses {used:,} of a {cfg.disk_budget_bytes:,}-byte budget; "
        f"{free:,} bytes free on {cfg.state_dir}",
    )
