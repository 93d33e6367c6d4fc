"""promote.py through the real local backend.

Success, and failure at each step keeps the old canonical.
"""

from __future__ import annotations

import pytest

from canonlib.backends.local import LocalBackend
from canonlib.state.registry import Registry
from canonlib.sweep.promote import promote
from tests.workspace import META, Workspace


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path)
    w.recipe(
        "plausible",
        meta=META + 'SECRETS = {"db_password": "alnum:24", "pds_plc_rotation_key": "hex:32"}\n',
    )
    w.release("plausible", "3.0.0+v2.0.0")
    w.release("plausible", "3.0.1+v2.0.0")
    return w


def do_promote(ws, tag, meta=None, backend=None, registry=None, mutate=None):
    cfg = ws.config
    m = ws.mirror("plausible")
    m.sync()
    with m.checkout(tag) as co:
        if mutate:
            mutate(co)
        return promote(
            co,
            meta or ws.meta("plausible"),
            mirror=m,
            backend=backend or LocalBackend(cfg.slots_dir),
            registry=registry,
            run_id="run-1",
        )


def test_promote_installs_records_and_retires_old(ws):
    cfg = ws.config
    backend = LocalBackend(cfg.slots_dir)
    with Registry.open(cfg.db_path) as reg:
        r1 = do_promote(ws, "3.0.0+v2.0.0", backend=backend, registry=reg)
        assert r1.ok, r1.error
        c = reg.read_registry("plausible")
        assert (c.version, c.deployment) == ("3.0.0+v2.0.0", r1.deployment)
        dep = backend.deployed(r1.deployment)
        assert (dep["version"], dep["commit"], dep["state"]) == (
            "3.0.0+v2.0.0",
            c.commit,
            "undeployed",
        )
        secret = (cfg.slots_dir / r1.deployment / "secrets" / "pds_plc_rotation_key").read_text()
        assert len(secret) == 64 and int(secret, 16) >= 0
        assert (cfg.slots_dir / r1.deployment / "data" / "seed.txt").exists()  # install steps ran
        assert list((cfg.slots_dir / r1.deployment / "snapshots").iterdir())
        r2 = do_promote(ws, "3.0.1+v2.0.0", backend=backend, registry=reg)
        assert r2.ok and r2.deployment != r1.deployment
        assert reg.read_registry("plausible").version == "3.0.1+v2.0.0"
        assert backend.deployed(r1.deployment) is None  # the old canonical slot was retired
        assert reg.verify_chain().ok and len(reg.history("plausible")) == 2


class FailAt(LocalBackend):
    """The real local backend with one step made to fail (fault injection for the test)."""

    def __init__(self, root, step):
        super().__init__(root)
        self.fail_step = step

    def __getattribute__(self, name):
        if name == object.__getattribute__(self, "fail_step"):

            def boom(*a, **k):
                raise RuntimeError(f"injected failure in {name}")

            return boom
        return object.__getattribute__(self, name)


@pytest.mark.parametrize(
    "step", ["provision", "deploy", "run_install_steps", "wait_ready", "snapshot", "undeploy"]
)
def test_failure_at_each_backend_step_keeps_old_canonical(ws, step):
    cfg = ws.config
    good = LocalBackend(cfg.slots_dir)
    with Registry.open(cfg.db_path) as reg:
        old = do_promote(ws, "3.0.0+v2.0.0", backend=good, registry=reg)
        before = reg.read_registry("plausible")
        r = do_promote(ws, "3.0.1+v2.0.0", backend=FailAt(cfg.slots_dir, step), registry=reg)
        assert not r.ok and "injected failure" in r.error
        assert reg.read_registry("plausible") == before
        assert good.deployed(old.deployment)["version"] == "3.0.0+v2.0.0"
        assert good.slots() == [old.deployment]  # the next slot was torn down


def test_real_failures_keep_old_canonical(ws):
    cfg = ws.config
    backend = LocalBackend(cfg.slots_dir)
    with Registry.open(cfg.db_path) as reg:
        old = do_promote(ws, "3.0.0+v2.0.0", backend=backend, registry=reg)
        cases = {
            "install": ws.meta("plausible").__class__(
                "plausible",
                ws.meta("plausible").path,
                {**ws.meta("plausible").values, "INSTALL_STEPS": ["false"]},
            ),
            "ready": ws.meta("plausible").__class__(
                "plausible",
                ws.meta("plausible").path,
                {
                    **ws.meta("plausible").values,
                    "READY_PROBES": [{"cmd": "false", "retries": 1, "interval_s": 0.01}],
                },
            ),
            "provision": ws.meta("plausible").__class__(
                "plausible",
                ws.meta("plausible").path,
                {**ws.meta("plausible").values, "SECRETS": {"k": "nope:3"}},
            ),
        }
        for step, meta in cases.items():
            r = do_promote(ws, "3.0.1+v2.0.0", meta=meta, backend=backend, registry=reg)
            assert not r.ok and r.step == step, (step, r)
            assert reg.read_registry("plausible").version == "3.0.0+v2.0.0"
            assert backend.slots() == [old.deployment]
        r = do_promote(
            ws,
            "3.0.1+v2.0.0",
            backend=backend,
            registry=reg,
            mutate=lambda co: (co.path / "compose.yml").write_text("tampered\n"),
        )
        assert not r.ok and r.step == "clean tree"
        assert reg.read_registry("plausible").version == "3.0.0+v2.0.0"


def test_tag_moved_during_run_refuses(ws):
    cfg = ws.config
    up = ws.upstreams["plausible"]
    backend = LocalBackend(cfg.slots_dir)
    with Registry.open(cfg.db_path) as reg:
        do_promote(ws, "3.0.0+v2.0.0", backend=backend, registry=reg)

        def move_tag(co):
            up.commit()
            up.tag("3.0.1+v2.0.0", force=True)
            ws.mirror("plausible").sync()

        r = do_promote(ws, "3.0.1+v2.0.0", backend=backend, registry=reg, mutate=move_tag)
        assert not r.ok and r.step == "tag check" and "moved during the run" in r.error
        assert reg.read_registry("plausible").version == "3.0.0+v2.0.0"
