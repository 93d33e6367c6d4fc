"""The systemd service + weekly timer that run canon unattended, rendered for this install.

The service runs ``canon evidence run weekly`` (exit 1 when the week is FAILED,
so ``OnFailure=`` fires when the operator names a unit to call) from the operator's checkout with
absolute paths, the config and fleet in ``Environment=``, and the same PATH as
the CI runner; the timer fires weekly in a low-traffic slot, ``Persistent=true``
so a missed run fires at boot, with a randomised delay.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from canonlib.claims import Claim
from canonlib.config import Config
from canonlib.files import read_small_file, write_atomic

SERVICE = "canon-sweep.service"
TIMER = "canon-sweep.timer"
DEFAULT_CALENDAR = "Sun *-*-* 02:30:00"
DEFAULT_DELAY = "1h"


@dataclass(frozen=True)
class UnitOptions:
    path: str  # the CI runner's PATH
    on_calendar: str = DEFAULT_CALENDAR
    randomized_delay: str = DEFAULT_DELAY
    python: str = sys.executable
    working_directory: Path | None = None
    fleet: Path | None = None
    start_timeout: str = "6h"
    user: str | None = None
    on_failure: str | None = (
        None  # a unit to start when the week is FAILED (exit 1) or the run breaks
    )


def checkout_root() -> Path:
    return Path(__file__).resolve().parents[2]


def render_service(config: Config, o: UnitOptions) -> str:
    if config.path is None:
        raise ValueError("render the units with --config pointing at the operator's canon.toml")
    wd = (o.working_directory or checkout_root()).resolve()
    fleet = (o.fleet or config.fleet).resolve()
    state, evidence = config.state_dir, config.evidence_dir
    tmp = "/tmp/canon"
    env = [
        ("CANON_CONFIG", str(config.path)),
        ("CCCI_REPO", str(fleet)),
        ("PATH", o.path),
        ("HOME", str(state / "home")),
        ("JUPYTER_RUNTIME_DIR", f"{tmp}/jupyter"),
        ("IPYTHONDIR", f"{tmp}/ipython"),
        ("MPLCONFIGDIR", f"{tmp}/matplotlib"),
        ("PYTHONUNBUFFERED", "1"),
    ]
    lines = [
        "# rendered by `canon systemd render`; re-render after moving the checkout or the config",
        "[Unit]",
        "Description=canon: weekly sweep of the Co-op Cloud recipe canonicals, as evidence",
        f"Documentation=file://{wd}/README.md",
        "Wants=network-online.target",
        "After=network-online.target",
        *([f"OnFailure={o.on_failure}"] if o.on_failure else []),
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={wd}",
        *[f"Environment={shlex.quote(f'{k}={v}')}" for k, v in env],
        f"ExecStart={o.python} -m canonlib evidence run weekly",
        *([f"User={o.user}"] if o.user else []),
        "Nice=10",
        "CPUSchedulingPolicy=batch",
        "IOSchedulingClass=idle",
        f"TimeoutStartSec={o.start_timeout}",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        f"ReadWritePaths={state} {evidence}",
        "PrivateTmp=true",
        "NoNewPrivileges=true",
        "",
    ]
    return "\n".join(lines)


def render_timer(o: UnitOptions) -> str:
    return "\n".join(
        [
            "# rendered by `canon systemd render`",
            "[Unit]",
            "Description=canon: weekly sweep, Sunday night with a randomised delay",
            "",
            "[Timer]",
            f"OnCalendar={o.on_calendar}",
            f"RandomizedDelaySec={o.randomized_delay}",
            "Persistent=true",
            "AccuracySec=1min",
            f"Unit={SERVICE}",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )


def render(config: Config, output: Path, o: UnitOptions) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    svc, tmr = output / SERVICE, output / TIMER
    write_atomic(svc, render_service(config, o))
    write_atomic(tmr, render_timer(o))
    return [svc, tmr]


# -- reading units --------------------------------------------------------------------

UNIT_CAP = 1 << 20  # a systemd unit is a few hundred bytes


def read_unit(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit (all sections), each key's values in order."""
    out: dict[str, list[str]] = {}
    # a unit someone else may have put there: a regular file under a cap, never a FIFO
    for line in read_small_file(path, UNIT_CAP).decode(errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def unit_environment(unit: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in unit.get("Environment", []):
        for assignment in shlex.split(value):
            k, _, v = assignment.partition("=")
            env[k] = v
    return env


# -- verifying units ----------------------------------------------------------------


def _calendar_is_weekly(spec: str) -> tuple[bool, str]:
    proc = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations=3", spec],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        return False, f"systemd-analyze calendar rejects {spec!r}: {proc.stderr.strip()}"
    stamps = re.findall(
        r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", proc.stdout
    )
    times = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S") for s in stamps]
    gaps = {(b - a).days for a, b in zip(times, times[1:], strict=False)}
    ok = len(times) == 3 and gaps == {7}
    return ok, f"{spec!r} fires at {', '.join(stamps)}" + ("" if ok else " (not weekly)")


def verify_units(directory: Path) -> list[Claim]:
    svc, tmr = directory / SERVICE, directory / TIMER
    claims = []
    for p in (svc, tmr):
        if not p.exists():
            claims.append(
                Claim(f"{p.name} present", False, f"{p} missing; run `canon systemd render` first")
            )
    if claims:
        return claims
    if shutil.which("systemd-analyze") is None:
        return [
            Claim(
                "systemd-analyze available",
                False,
                "systemd-analyze is not on PATH; install systemd",
            )
        ]
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(svc), str(tmr)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    noise = [ln for ln in proc.stderr.splitlines() if ln.strip() and not _harmless(ln)]
    claims.append(
        Claim(
            "systemd-analyze verify",
            proc.returncode == 0 and not noise,
            "; ".join(noise) or "both units verify",
        )
    )
    timer = read_unit(tmr)
    service = read_unit(svc)
    cal = (timer.get("OnCalendar") or [""])[0]
    ok, detail = _calendar_is_weekly(cal)
    claims.append(Claim("timer is weekly", ok, detail))
    claims.append(
        Claim(
            "timer Persistent=true",
            timer.get("Persistent") == ["true"],
            "a missed run fires at boot",
        )
    )
    claims.append(
        Claim(
            "timer has a randomised delay",
            bool(timer.get("RandomizedDelaySec")),
            f"RandomizedDelaySec={timer.get('RandomizedDelaySec')}",
        )
    )
    env = unit_environment(service)
    claims.append(
        Claim(
            "service names the config and the fleet",
            bool(env.get("CANON_CONFIG") and env.get("CCCI_REPO")),
            f"CANON_CONFIG={env.get('CANON_CONFIG')} CCCI_REPO={env.get('CCCI_REPO')}",
        )
    )
    claims.append(Claim("service sets PATH", bool(env.get("PATH")), env.get("PATH", "unset")))
    claims.append(
        Claim(
            "service is oneshot", service.get("Type") == ["oneshot"], f"Type={service.get('Type')}"
        )
    )
    return claims


def _harmless(line: str) -> bool:
    # verify runs outside the target system: a missing ReadWritePaths dir is not a unit error
    return (
        "Failed to prepare filesystem namespace" in line or "Unit is bound to inactive unit" in line
    )
