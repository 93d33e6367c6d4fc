"""recipe/hostaccess.py: what a release asks of the host, with file and line; pure, table-tested."""

from __future__ import annotations

import pytest

from canonlib.recipe.hostaccess import (
    SOCKET,
    Access,
    ComposeUnreadable,
    canonical_entry,
    entry_problem,
    interpolate,
    meta_line,
    not_accepted,
    reaching,
    read_host_access,
)


def asked(service_yaml: str, env=None, top: str = "") -> list[str]:
    text = "services:\n  app:\n    image: x:1\n" + service_yaml + top
    return [a.item for a in read_host_access([("compose.yml", text)], env or {})]


# what a service says -> the items it asks for
SERVICE_CASES = [
    ("", []),
    ("    volumes:\n      - data:/data\n      - /tmp\n", []),  # named and anonymous: no host
    ("    volumes:\n      - /:/host\n", ["bind:/"]),
    ("    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock:ro\n", [f"bind:{SOCKET}"]),
    ("    volumes:\n      - /run/docker.sock:/s\n", [f"bind:{SOCKET}"]),
    ("    volumes:\n      - ../../var/run/docker.sock:/s\n", [f"bind:{SOCKET}"]),
    ("    volumes:\n      - /var/run/docker.sock/:/s\n", [f"bind:{SOCKET}"]),
    ("    volumes:\n      - //var//run/./docker.sock:/s\n", [f"bind:{SOCKET}"]),
    ("    volumes:\n      - /var/lib/../run/docker.sock:/s\n", [f"bind:{SOCKET}"]),
    ("    volumes:\n      - /etc/:/e\n", ["bind:/etc"]),
    ("    volumes:\n      - ./conf/nginx.conf:/etc/nginx.conf\n", ["bind:./conf/nginx.conf"]),
    ("    volumes:\n      - ~/backups:/b\n", ["bind:~/backups"]),
    (
        "    volumes:\n      - type: bind\n        source: /srv/x\n        target: /x\n",
        ["bind:/srv/x"],
    ),
    (
        "    volumes:\n      - type: bind\n        source: /run/docker.sock/\n        target: /s\n",
        [f"bind:{SOCKET}"],
    ),
    ("    volumes:\n      - type: volume\n        source: data\n        target: /x\n", []),
    ("    volumes:\n      - type: tmpfs\n        target: /x\n", []),
    ("    privileged: true\n", ["privileged"]),
    ("    privileged: false\n", []),
    ('    privileged: "yes"\n', ["privileged"]),
    (
        "    cap_add:\n      - sys_admin\n      - CAP_NET_ADMIN\n",
        ["cap_add:SYS_ADMIN", "cap_add:NET_ADMIN"],
    ),
    ("    devices:\n      - /dev/fuse:/dev/fuse:rwm\n", ["devices:/dev/fuse"]),
    ("    security_opt:\n      - seccomp:unconfined\n", ["security_opt:seccomp=unconfined"]),
    ("    security_opt:\n      - apparmor=unconfined\n", ["security_opt:apparmor=unconfined"]),
    ("    security_opt:\n      - no-new-privileges:true\n", []),
    ("    sysctls:\n      net.core.somaxconn: 1024\n", ["sysctls:net.core.somaxconn"]),
    ("    sysctls:\n      - net.ipv4.ip_forward=1\n", ["sysctls:net.ipv4.ip_forward"]),
    ("    userns_mode: host\n", ["userns_mode:host"]),
    ("    network_mode: host\n", ["network_mode:host"]),
    ("    network_mode: bridge\n", []),
    ("    pid: host\n", ["pid:host"]),
    ("    ipc: host\n", ["ipc:host"]),
    ("    ipc: shareable\n", []),
    ("    ports:\n      - 80:80\n", []),
    (
        "    ports:\n      - target: 80\n        published: 8080\n        mode: host\n",
        ["ports:host:8080"],
    ),
    (
        "    ports:\n      - target: 53\n        published: 53\n        protocol: udp\n"
        "        mode: host\n",
        ["ports:host:53/udp"],
    ),
    ("    ports:\n      - target: 80\n        published: 80\n        mode: ingress\n", []),
]


@pytest.mark.parametrize(("service", "items"), SERVICE_CASES)
def test_what_a_service_asks(service, items):
    assert asked(service) == items


def test_interpolated_with_the_slots_env():
    env = {"DATA": "/srv/data", "MODE": "host", "SOCK": "/run/docker.sock"}
    service = (
        "    volumes:\n      - ${DATA}:/d\n      - ${SOCK:-/x}:/s\n      - ${UNSET:-/opt}:/o\n"
        "      - $${NOT}:/n\n"
        "    network_mode: $MODE\n"
    )
    assert asked(service, env) == [
        "bind:/srv/data",
        f"bind:{SOCKET}",
        "bind:/opt",
        "network_mode:host",
    ]


@pytest.mark.parametrize(
    ("text", "env", "out"),
    [
        ("$A", {"A": "1"}, "1"),
        ("${A}", {"A": "1"}, "1"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A:+alt}", {"A": "1"}, "alt"),
        ("${A:+alt}", {}, ""),
        ("${A:?need A}", {"A": "1"}, "1"),
        ("${A:-${B}}", {"B": "b"}, "b"),
        ("$$A", {"A": "1"}, "$A"),
        ("a$", {}, "a$"),
    ],
)
def test_interpolate(text, env, out):
    assert interpolate(text, env) == out


def test_top_level_binds_in_disguise_host_files_and_host_networks():
    top = (
        "    networks: [hostnet]\n"
        "volumes:\n  sneaky:\n    driver_opts:\n      type: none\n      o: bind\n"
        "      device: /etc\n"
        "configs:\n  ok:\n    file: nginx.conf\n  key:\n    file: /srv/canon/state/keys/k\n"
        "networks:\n  hostnet:\n    external: true\n    name: host\n"
    )
    assert sorted(asked("", top=top)) == sorted(
        ["bind:/etc", "file:/srv/canon/state/keys/k", "network_mode:host"]
    )


def test_file_and_line_over_every_compose_file_with_merge_keys():
    base = "services:\n  app:\n    image: x:1\n"
    extra = (
        "x-common: &common\n"
        "  privileged: true\n"
        "services:\n"
        "  app:\n"
        "    <<: *common\n"
        "    volumes:\n"
        "      - /:/host\n"
    )
    got = read_host_access([("compose.yml", base), ("compose.host.yml", extra)], {})
    assert [(a.item, a.file, a.line, a.service) for a in got] == [
        ("privileged", "compose.host.yml", 2, "app"),
        ("bind:/", "compose.host.yml", 7, "app"),
    ]


@pytest.mark.parametrize("text", ["services: [", "- a\n- b\n"])
def test_unreadable_compose_is_named(text):
    with pytest.raises(ComposeUnreadable, match="compose.yml"):
        read_host_access([("compose.yml", text)], {})


def test_not_accepted_and_the_meta_line():
    got = read_host_access(
        [
            (
                "compose.yml",
                "services:\n  a:\n    volumes: ['/var/run/docker.sock:/s', '/:/host']\n"
                "  b:\n    volumes: ['/:/root']\n",
            )
        ],
        {},
    )
    new = not_accepted(got, [f"bind:{SOCKET}"])
    assert [a.item for a in new] == ["bind:/"]  # once, at its first place
    assert new[0].where == "compose.yml:3"
    assert meta_line([f"bind:{SOCKET}"], new) == (
        'HOST_ACCESS = ["bind:/var/run/docker.sock", "bind:/"]'
    )


@pytest.mark.parametrize(
    ("source", "base", "reaches"),
    [
        ("/", "/r", "state dir"),
        ("/srv", "/r", "state dir"),
        ("/srv/canon/state", "/r", "state dir"),
        ("/srv/canon/state/keys", "/r", "state dir"),  # the keys are inside the state dir
        ("/srv/canon/evidence/", "/r", "evidence dir"),
        ("/srv/canon/stat", "/r", None),  # a sibling with a shared prefix is not above it
        ("/var/run/docker.sock", "/r", None),
        ("./data", "/srv/canon/state/checkouts/x", None),  # inside the recipe's own tree
        ("../../..", "/srv/canon/state/checkouts/x", "state dir"),
        ("~/", "/r", "state dir"),  # home is /srv/canon here
    ],
)
def test_binds_of_or_above_canons_own_places(source, base, reaches):
    a = Access("bind:" + source, "compose.yml", 3, "app", source)
    protected = {"state dir": ["/srv/canon/state"], "evidence dir": ["/srv/canon/evidence"]}
    got = reaching([a], protected, base, "/srv/canon")
    assert [w for _, w in got] == ([reaches] if reaches else [])


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("privileged", None),
        (f"bind:{SOCKET}", None),
        ("bind:/", None),
        ("cap_add:SYS_ADMIN", None),
        ("network_mode:host", None),
        ("ports:host:8080", None),
        ("ports:host:53/udp", None),
        ("security_opt:seccomp=unconfined", None),
        ("bind:/run/docker.sock", "did you mean 'bind:/var/run/docker.sock'?"),
        ("bind:/var/run/docker.sock/", "did you mean 'bind:/var/run/docker.sock'?"),
        ("bind:/:/host", "did you mean 'bind:/'?"),
        ("cap_add:sys_admin", "did you mean 'cap_add:SYS_ADMIN'?"),
        ("priviliged", "did you mean 'privileged'?"),
        ("network_mode=host", "did you mean 'network_mode:host'?"),
        ("bnd:/var/run/docker.sock", "did you mean 'bind:/var/run/docker.sock'?"),
        ("docker socket please", "known kinds"),
        (3, "not a string"),
    ],
)
def test_host_access_entries_name_the_closest_spelling(entry, problem):
    got = entry_problem(entry)
    if problem is None:
        assert got is None
        assert canonical_entry(entry) == entry
    else:
        assert got is not None and problem in got
