"""``canon harness``: the built-in cold-run harness.

Reads the CCCI_* environment the runner sets, deploys the checkout through the
configured backend into a throw-away slot, climbs the rungs and writes
``$CCCI_RESULT_FILE``.  Its slots are always torn down, on failure and on
SIGTERM too.

Rungs: L1 install, L2 upgrade (from ``CCCI_UPGRADE_BASE``), L3 backup/restore,
L4 functional (pytest on the fleet's ``tests/<recipe>/``), L5 lint.  A rung in
the meta's ``EXPECTED_NA`` is ``skip``; a rung that should have run and could
not is ``unverified``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from . import git, policy
from .backends import Backend, BackendError, make_backend
from .config import load_config
from .errors import CanonError
from .meta import RUNGS, RecipeMeta, load_meta

VERSION_LABEL = "coop-cloud.${STACK_NAME}.version"


def _labels(service: Any) -> dict[str, str]:
    deploy = service.get("deploy") if isinstance(service, dict) else None
    labels = deploy.get("labels") if isinstance(deploy, dict) else None
    if isinstance(labels, dict):
        return {str(k): str(v) for k, v in labels.items()}
    if isinstance(labels, list):
        return dict(str(x).split("=", 1) if "=" in str(x) else (str(x), "") for x in labels)
    return {}


def lint(recipe_dir: Path, tag: str) -> tuple[str, str, list[str]]:
    """(status, reason, warnings) for L5: compose parses, version label == tag, .env.sample."""
    problems, warnings = [], []
    compose = recipe_dir / "compose.yml"
    try:
        doc = yaml.safe_load(compose.read_text())
    except FileNotFoundError:
        doc = None
        problems.append("compose.yml missing")
    except yaml.YAMLError as e:
        doc = None
        problems.append(f"compose.yml does not parse: {str(e).splitlines()[0]}")
    if doc is not None:
        services = doc.get("services") if isinstance(doc, dict) else None
        if not isinstance(services, dict) or not services:
            problems.append("compose.yml has no services")
        else:
            found = {name: _labels(s).get(VERSION_LABEL) for name, s in services.items()}
            found = {k: v for k, v in found.items() if v is not None}
            if not found:
                problems.append(f"no service carries the label {VERSION_LABEL}")
            for name, value in found.items():
                if value != tag:
                    problems.append(f"service {name}: {VERSION_LABEL}={value} but the tag is {tag}")
    if not (recipe_dir / ".env.sample").is_file():
        problems.append(".env.sample missing")
    if not git.ref_name_problem(tag) and not (recipe_dir / "release" / tag).exists():
        warnings.append(
            f"no release note release/{tag} (a warning: real recipes ship releases without)"
        )
    return (policy.FAIL if problems else policy.PASS), "; ".join(problems), warnings


def functional_tests(fleet_tests: Path, recipe: str, env: Mapping[str, str], timeout_s: float,
                     log) -> tuple[str, int, set[str], str]:  # fmt: skip
    """Run pytest on ``<fleet>/tests/<recipe>/``: (status, tests executed, failed test ids, reason)."""
    tests_dir = fleet_tests / recipe
    failed: set[str] = set()
    executed = 0
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                f"--rootdir={tests_dir}", "-o", "addopts=", str(tests_dir)]  # fmt: skip
        try:
            proc = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True,
                                  timeout=timeout_s, cwd=tests_dir)  # fmt: skip
        except subprocess.TimeoutExpired:
            return policy.FAIL, 0, failed, f"functional tests timed out after {timeout_s:g}s"
        log(proc.stdout[-4000:] + proc.stderr[-2000:])
        if junit.exists():
            for case in ET.parse(junit).getroot().iter("testcase"):
                if case.find("skipped") is not None:
                    continue
                executed += 1
                if case.find("failure") is not None or case.find("error") is not None:
                    failed.add(f"{case.get('classname')}::{case.get('name')}")
    if executed == 0:
        return (
            policy.UNVERIFIED,
            0,
            failed,
            f"no test executed under {tests_dir} (no evidence is not a pass)",
        )
    if proc.returncode != 0:
        return (
            policy.FAIL,
            executed,
            failed,
            f"pytest exited {proc.returncode}: {', '.join(sorted(failed)) or 'see log'}",
        )
    return policy.PASS, executed, failed, ""


class Harness:
    def __init__(self, env: Mapping[str, str]):
        self.env = dict(env)
        self.recipe = env["CCCI_RECIPE"]
        self.recipe_dir = Path(env["CCCI_RECIPE_DIR"])
        self.version = env["CCCI_VERSION"]
        self.commit = env["CCCI_COMMIT"]
        self.base = env.get("CCCI_UPGRADE_BASE") or None
        self.base_kind = env.get("CCCI_UPGRADE_BASE_KIND", "skip")
        self.base_reason = env.get("CCCI_UPGRADE_BASE_REASON", "")
        self.result_file = Path(env["CCCI_RESULT_FILE"])
        self.config = load_config()
        self.meta: RecipeMeta = load_meta(self.config.fleet_tests / self.recipe)
        self.backend: Backend = make_backend(self.config, run_dir=self.result_file.parent)
        self.slot = f"cold-{self.recipe}-{self.commit[:10]}"
        self.rungs: dict[str, str] = {}
        self.reasons: dict[str, str] = {}
        self.warnings: list[str] = []
        self.tests_executed = 0
        self.failed_fresh: set[str] = set()

    def log(self, text: str) -> None:
        if text.strip():
            print(text.rstrip(), flush=True)

    def _set(self, rung: str, status: str, reason: str = "") -> None:
        self.rungs[rung] = status
        if reason:
            self.reasons[rung] = reason
        self.log(
            f"[canon harness] {self.recipe} {rung}: {status}{' (' + reason + ')' if reason else ''}"
        )

    def _na(self, rung: str) -> bool:
        reason = self.meta.expected_na.get(rung)
        if reason:
            self._set(rung, policy.SKIP, f"EXPECTED_NA: {reason}")
        return bool(reason)

    def _install(self, slot: str, tree: Path, version: str, commit: str) -> None:
        self.backend.provision(slot, tree, self.meta)
        self.backend.deploy(slot, tree, self.meta, version=version, commit=commit)
        self.backend.run_install_steps(slot, self.meta)
        self.backend.wait_ready(slot, self.meta)

    def _functional(self, slot: str) -> tuple[str, int, set[str], str]:
        env = {
            **self.backend.slot_env(slot),
            **{k: v for k, v in self.env.items() if k.startswith("CCCI_")},
        }
        status, n, failed, reason = functional_tests(self.config.fleet_tests, self.recipe, env,
                                                     float(self.meta.DEPLOY_TIMEOUT_S), self.log)  # fmt: skip
        self.tests_executed += n
        return status, n, failed, reason

    def climb(self) -> None:
        installed = False
        if not self._na("install"):
            try:
                self._install(self.slot, self.recipe_dir, self.version, self.commit)
                installed = True
                self._set("install", policy.PASS)
            except (BackendError, CanonError) as e:
                self._set("install", policy.FAIL, str(e))
        if not self._na("upgrade"):
            self._upgrade()
        # L4 runs before L3: backup/restore passes when every test that passed on the
        # fresh install still passes after a wipe and restore
        for rung, fn in (("functional", self._functional_rung), ("backup", self._backup)):
            if self._na(rung):
                continue
            if not installed:
                self._set(rung, policy.UNVERIFIED, "install did not pass")
                continue
            fn()
        if not self._na("lint"):
            status, reason, warnings = lint(self.recipe_dir, self.version)
            self.warnings += warnings
            self._set("lint", status, reason)

    def _upgrade(self) -> None:
        if not self.base or self.base_kind == "skip":
            self._set(
                "upgrade", policy.SKIP, f"no upgrade base: {self.base_reason or 'none resolved'}"
            )
            return
        slot = f"{self.slot}-up"
        with tempfile.TemporaryDirectory(prefix="canon-base-") as tmp:
            base_tree = Path(tmp) / "base"
            try:
                git.check_ref_name(self.base)
                base_commit = git.run(["rev-parse", "--verify", f"refs/tags/{self.base}^{{commit}}"],
                                      cwd=self.recipe_dir).stdout.strip()  # fmt: skip
                git.clone_at(self.recipe_dir, base_tree, base_commit)
                self._install(slot, base_tree, self.base, base_commit)
                self.backend.provision(
                    slot, self.recipe_dir, self.meta
                )  # secrets the new version adds
                self.backend.deploy(
                    slot, self.recipe_dir, self.meta, version=self.version, commit=self.commit
                )
                self.backend.wait_ready(slot, self.meta)
                status, _n, _failed, reason = self._functional(slot)
                self._set("upgrade", policy.PASS if status == policy.PASS else status,
                          f"from {self.base_kind} {self.base}" + (f": {reason}" if reason else ""))  # fmt: skip
            except (BackendError, CanonError) as e:
                self._set("upgrade", policy.FAIL, f"from {self.base_kind} {self.base}: {e}")
            finally:
                self._teardown(slot)

    def _backup(self) -> None:
        try:
            snap = self.backend.snapshot(self.slot)
            self.backend.wipe_data(self.slot)
            self.backend.restore(self.slot, snap)
            self.backend.wait_ready(self.slot, self.meta)
        except (BackendError, CanonError) as e:
            self._set("backup", policy.FAIL, str(e))
            return
        status, n, failed, reason = self._functional(self.slot)
        if status == policy.UNVERIFIED:
            self._set("backup", status, f"after restore: {reason}")
        elif failed - self.failed_fresh:
            self._set(
                "backup",
                policy.FAIL,
                f"after restore these fail: {', '.join(sorted(failed - self.failed_fresh))}",
            )
        else:
            self._set("backup", policy.PASS, f"{n} test(s) after restore, no new failure")

    def _functional_rung(self) -> None:
        status, _n, failed, reason = self._functional(self.slot)
        self.failed_fresh = failed
        self._set("functional", status, reason)

    def _teardown(self, slot: str) -> None:
        try:
            self.backend.teardown(slot)
        except (BackendError, CanonError) as e:
            self.warnings.append(f"teardown of {slot} failed: {e}")

    def write_result(self) -> dict[str, Any]:
        rungs = {r: self.rungs.get(r, policy.UNVERIFIED) for r in RUNGS}
        result = {
            "recipe": self.recipe, "version": self.version, "commit": self.commit,
            "upgrade_base": self.base, "upgrade_base_kind": self.base_kind,
            "rungs": rungs, "reasons": self.reasons, "level": policy.level(rungs),
            "tests_executed": self.tests_executed, "warnings": self.warnings,
            "green": policy.is_green(rungs, self.tests_executed),
        }  # fmt: skip
        tmp = self.result_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, self.result_file)
        return result


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    missing = [k for k in ("CCCI_RECIPE", "CCCI_RECIPE_DIR", "CCCI_VERSION", "CCCI_COMMIT", "CCCI_RESULT_FILE")
               if not env.get(k)]  # fmt: skip
    if missing:
        print(f"canon harness: missing {', '.join(missing)}; the harness is started by `canon sweep`",
              file=sys.stderr)  # fmt: skip
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    h = Harness(env)
    try:
        h.climb()
    finally:
        h._teardown(h.slot)
        result = h.write_result()
        shutil.rmtree(h.result_file.parent / "abra", ignore_errors=True)
    print(f"[canon harness] {h.recipe} {h.version}: level {result['level']}/{len(RUNGS)}, "
          f"{result['tests_executed']} test(s), {'green' if result['green'] else 'not green'}")  # fmt: skip
    return 0 if result["green"] else 1
