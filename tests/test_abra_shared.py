"""The abra backend reuses the swarm backend's pieces: abra's secret versions from the env,
compose files parsed before a deploy, ``service: cmd`` steps split the same way.

Against the FAKE `abra` of tests/test_abra.py (the one stand-in of the suite)."""

from __future__ import annotations

import pytest

from canonlib.backends import BackendError
from tests.test_abra import ABRA_META, backend, fake_abra  # noqa: F401 -- the fixture
from tests.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path)
    w.recipe("bluesky-pds", meta=ABRA_META)
    return w


def test_secret_versions_come_from_the_env_like_abra(ws, tmp_path, fake_abra):  # noqa: F811
    sample = "TYPE=bluesky-pds\nSECRET_JWT_SECRET_VERSION=v3 # length=40\n"
    ws.release("bluesky-pds", "0.2.0+v0.4", extra={".env.sample": sample})
    m = ws.mirror("bluesky-pds")
    m.sync()
    with m.checkout("0.2.0+v0.4") as co:
        backend(tmp_path).provision("cold-bluesky-pds-1", co.path, ws.meta("bluesky-pds"))
    argvs = [c["argv"] for c in fake_abra()]
    generate = next(a for a in argvs if a[:3] == ["app", "secret", "generate"])
    insert = next(a for a in argvs if a[:3] == ["app", "secret", "insert"])
    assert generate[4:6] == ["jwt_secret", "v3"] and insert[4:6] == ["pds_plc_rotation_key", "v1"]


def test_a_compose_file_that_does_not_parse_never_reaches_abra(ws, tmp_path, fake_abra):  # noqa: F811
    ws.release("bluesky-pds", "0.2.0+v0.4", extra={"compose.yml": "services: [oops\n"})
    m = ws.mirror("bluesky-pds")
    m.sync()
    b = backend(tmp_path)
    meta = ws.meta("bluesky-pds")
    with m.checkout("0.2.0+v0.4") as co:
        b.provision("cold-bluesky-pds-1", co.path, meta)
        with pytest.raises(BackendError, match="compose.yml at 0.2.0.v0.4 does not parse"):
            b.deploy("cold-bluesky-pds-1", co.path, meta, version=co.tag, commit=co.commit)
    assert not [c for c in fake_abra() if c["argv"][:2] == ["app", "deploy"]]
