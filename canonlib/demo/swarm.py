"""The demo fleet on a real Docker Swarm (``canon demo --backend swarm``).

Same recipes, weeks and expected labels as the local demo, except where a real swarm
answers otherwise (``fleet.EXPECTED_ON_BACKEND``: a config changed without its version
bumped fails the upgrade itself); what changes is what a release holds and how the fleet
tests look at a slot:

- each recipe's image (``<recipe>:<app version>``) is built locally from the
  test image ``scripts/swarm-up`` makes (busybox, no registry needed): a tiny
  httpd serving ``/var/lib/<recipe>``;
- ``compose.yml`` (``demo.compose_yml(..., swarm=True)``) mounts ``app.conf`` (and a
  release's ``post-install.sh``) as versioned swarm configs, like real recipes do;
- install steps and probes run inside the service's container (``docker
  exec``), and the fleet tests read the slot through ``docker exec`` too.
"""

from __future__ import annotations

import subprocess
import tempfile
import textwrap
from pathlib import Path

from canonlib.backends.swarm import SwarmBackend
from canonlib.errors import UsageError

BASE_IMAGE = "canon-test/busybox:1"


def meta(recipe: str) -> str:
    data = f"/var/lib/{recipe}"
    return textwrap.dedent(f"""\
        WARM_CANONICAL = True
        INSTALL_STEPS = ['app: echo seeded > {data}/seed.txt', 'app: test ! -x /post-install.sh || /post-install.sh']
        READY_PROBES = [{{"cmd": "app: test -f {data}/seed.txt", "retries": 3, "interval_s": 0.5}}]
        DEPLOY_TIMEOUT_S = 120
    """)  # noqa: E501 -- a recipe_meta.py the demo writes, line for line


FLEET_TEST = textwrap.dedent('''\
    """Functional tests the operator keeps for this recipe; they look into the slot's container."""
    import os
    import subprocess

    RECIPE = os.environ["CCCI_RECIPE"]
    STACK = os.environ["CANON_STACK"]
    CONTEXT = os.environ.get("CANON_DOCKER_CONTEXT")
    DOCKER = ["docker", *(["--context", CONTEXT] if CONTEXT else [])]


    def in_app(cmd):
        ids = subprocess.run([*DOCKER, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={STACK}_app",
                              "--filter", "status=running"], capture_output=True, text=True, check=True).stdout.split()
        assert ids, f"no running container of {STACK}_app"
        return subprocess.run([*DOCKER, "exec", ids[0], "sh", "-c", cmd], capture_output=True, text=True)


    def test_app_serves():
        assert in_app("wget -q -O- http://127.0.0.1:8080/ >/dev/null").returncode == 0


    def test_seeded_data_is_there():
        assert in_app(f"cat /var/lib/{RECIPE}/seed.txt").stdout.strip() == "seeded"


    def test_app_config_is_sane():
        conf = in_app("cat /etc/app.conf")
        assert conf.returncode == 0 and "broken" not in conf.stdout
''')  # noqa: E501 -- the fleet test file the demo writes, line for line

DOCKERFILE = """\
FROM {base}
CMD ["sh", "-c", "mkdir -p /var/lib/{recipe} /srv && echo {recipe} > /srv/index.html && exec httpd -f -p 8080 -h /srv"]
"""  # noqa: E501 -- the Dockerfile the demo builds, line for line


def build_images(images: dict[str, str], docker: str = "docker") -> None:
    """Build each ``image -> recipe`` locally on top of the swarm-up test image."""
    if subprocess.run(
        [docker, "image", "inspect", BASE_IMAGE], capture_output=True, check=False
    ).returncode:
        raise UsageError(f"the demo on the swarm needs {BASE_IMAGE}: run scripts/swarm-up first")
    for image, recipe in sorted(images.items()):
        with tempfile.TemporaryDirectory() as ctx:
            (Path(ctx) / "Dockerfile").write_text(DOCKERFILE.format(base=BASE_IMAGE, recipe=recipe))
            proc = subprocess.run(
                [docker, "build", "-q", "-t", image, ctx],
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            if proc.returncode:
                raise UsageError(
                    f"building demo image {image} failed: {proc.stderr.strip()[-300:]}"
                )


def ensure_proxy_network(docker: str = "docker", context: str | None = None) -> None:
    """Co-op Cloud recipes join the external ``proxy`` network traefik makes; the demo makes it
    (on ``context``'s engine: one of several servers)."""
    argv = [docker, *(["--context", context] if context else [])]
    if subprocess.run(
        [*argv, "network", "inspect", "proxy"], capture_output=True, check=False
    ).returncode:
        subprocess.run(
            [*argv, "network", "create", "-d", "overlay", "--attachable", "proxy"],
            capture_output=True,
            check=True,
        )


def demo_servers(n: int) -> list[str]:
    """The docker contexts of ``scripts/swarm-up --servers n``: canon-s1 .. canon-s<n>."""
    return [f"canon-s{i}" for i in range(1, n + 1)]


def copy_image(image: str, contexts: list[str], docker: str = "docker") -> None:
    """``docker save image | docker --context C load`` for each of the other servers."""
    for ctx in contexts:
        if not subprocess.run(
            [docker, "--context", ctx, "image", "inspect", image], capture_output=True, check=False
        ).returncode:
            continue
        save = subprocess.Popen([docker, "save", image], stdout=subprocess.PIPE)
        load = subprocess.run(
            [docker, "--context", ctx, "load"], stdin=save.stdout, capture_output=True, check=False
        )
        save.stdout.close()  # type: ignore[union-attr]  # Popen(stdout=PIPE) has one
        if save.wait() or load.returncode:
            raise UsageError(
                f"copying demo image {image} to server {ctx} failed: "
                f"{load.stderr.decode(errors='replace').strip()[-300:]}; scripts/swarm-up --servers"
            )


def clean(root: str | Path, servers: int = 1) -> list[str]:
    """Every slot a swarm demo in ``root`` left on the swarm (its canonicals too), by its labels,
    on each of its ``servers``."""
    state = Path(root) / "state" / "swarm"
    if not (Path(root) / ".canon-demo").exists():
        raise UsageError(f"{root} was not made by `canon demo`; nothing removed")
    if servers <= 1:
        return SwarmBackend(state).purge()
    return [
        slot
        for ctx in demo_servers(servers)
        for slot in SwarmBackend(state, context=ctx, server=ctx).purge()
    ]


if __name__ == "__main__":  # python -m canonlib.demo.swarm clean DIR (make demo-swarm-clean)
    import sys

    if len(sys.argv) not in (3, 4) or sys.argv[1] != "clean":
        sys.exit("usage: python -m canonlib.demo.swarm clean DIR [SERVERS]")
    try:
        gone = clean(sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 1)
    except UsageError as e:
        sys.exit(f"canon: {e}")
    print(
        f"removed {len(gone)} demo slot(s) from the swarm"
        + (f": {', '.join(gone)}" if gone else "")
    )
