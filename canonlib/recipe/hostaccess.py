"""What a release asks of the host, read from its compose files: pure, no I/O.

A recipe under test is someone else's code, and its compose files can ask the
machine that runs canon for a great deal: a bind of ``/`` or of the docker
socket is root on that machine (canon's registry, keys and evidence included).
:func:`read_host_access` lists every such ask, each with one canonical
spelling, the file and the line, so the sweep can hold a release that asks for
more than the operator accepted in ``HOST_ACCESS`` (``recipe_meta.py``).

What counts, per service (short and long syntax, merge keys and anchors followed):

- ``bind:<host path>``: a volume whose source is a host path (``/x``, ``./x``,
  ``~/x``; ``type: bind``), and a top-level volume that is a bind in disguise
  (``driver_opts: {o: bind, device: /x}``).  Paths are normalised (``..``,
  ``//``, a trailing ``/``), ``/run/…`` is spelt ``/var/run/…``, and any path that
  ends in ``run/docker.sock`` is ``bind:/var/run/docker.sock``;
- ``file:<host path>``: a top-level config or secret read from a host file outside
  the recipe (``docker stack deploy`` copies it from canon's machine);
- ``privileged``; ``cap_add:<CAP>`` (upper case, no ``CAP_``); ``devices:<host path>``;
  ``security_opt:<name>=<value>``; ``sysctls:<name>``;
- ``network_mode:host`` (also a network whose name is ``host``), ``pid:host``,
  ``ipc:host``, ``uts:host``, ``cgroup:host``, ``userns_mode:host``;
- ``ports:host:<published>[/udp]``: a port published in ``mode: host``.

The strings are rendered with the slot's env (compose interpolation: ``$VAR``,
``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:+alt}``, ``${VAR:?err}``,
``$$``).  Which files and which env is the caller's business: the sweep resolves
them as the backends do (``backends.compose.app_env`` and ``compose_files``).
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import yaml

SOCKET = "/var/run/docker.sock"
HOST_MODES = ("network_mode", "pid", "ipc", "uts", "cgroup", "userns_mode")
_FALSE = {"false", "no", "off", "0", "n", ""}
_CAP = re.compile(r"[A-Z][A-Z0-9_]*")
# security options that take access away: never a grant
_HARMLESS_OPTS = {"no-new-privileges", "no-new-privileges=true"}


class ComposeUnreadable(ValueError):
    """A compose file canon cannot read (not YAML, not a mapping); names the file and line."""


@dataclass(frozen=True, order=True)
class Access:
    """One thing a release asks of the host."""

    item: str  # the canonical spelling, as HOST_ACCESS accepts it
    file: str  # the compose file, relative to the recipe
    line: int  # 1-based
    service: str | None = None
    source: str | None = None  # for bind:/file: the host path as rendered (relative or not)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


# -- interpolation -----------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` with compose's ``$`` syntax expanded from ``env`` (an unset name is "")."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing(text, i + 2)
            if end is None:
                out.append(text[i:])
                break
            out.append(_braced(text[i + 2 : end], env))
            i = end + 1
        elif m := _NAME.match(text, i + 1):
            out.append(env.get(m[0], ""))
            i = m.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing(text: str, start: int) -> int | None:
    depth = 1
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return None


def _braced(inner: str, env: Mapping[str, str]) -> str:
    m = _NAME.match(inner)
    if not m:
        return ""
    name, rest = m[0], inner[m.end() :]
    value = env.get(name)
    for op in (":-", ":+", ":?", "-", "+", "?"):
        if rest.startswith(op):
            arg = interpolate(rest[len(op) :], env)
            empty = not value if op.startswith(":") else value is None
            if op.endswith("-"):
                return arg if empty else str(value)
            if op.endswith("+"):
                return "" if empty else arg
            return "" if empty else str(value)  # ?: docker refuses; nothing is asked
    return value or ""


# -- paths -------------------------------------------------------------------------


def is_host_path(source: str) -> bool:
    """Whether a volume's source is a host path (compose: it starts with ``/``, ``.`` or ``~``)."""
    return source.startswith(("/", ".", "~"))


def canonical_path(path: str) -> str:
    """One spelling of a host path: normalised, ``/run`` as ``/var/run``, the socket as itself."""
    p = path.strip()
    if p.startswith("~"):
        head, _, tail = p.partition("/")
        norm = head + ("/" + posixpath.normpath(tail) if tail else "")
        norm = norm.removesuffix("/.")
    else:
        norm = posixpath.normpath(p)
        if norm.startswith("//"):
            norm = "/" + norm.lstrip("/")
        if not norm.startswith(("/", "..")):
            norm = "./" + norm if norm != "." else "."
    if norm == "/run" or norm.startswith("/run/"):
        norm = "/var" + norm
    leaves = norm.startswith(("/", ".."))  # a path inside the recipe is the recipe's own file
    if leaves and (norm == "/docker.sock" or norm.endswith("run/docker.sock")):
        return SOCKET
    return norm


def covers(source: str, protected: str) -> bool:
    """Whether a bind of ``source`` reaches ``protected`` (both absolute, normalised): it is
    that path, a directory above it, or something inside it (``state/canon.db``)."""
    s, p = source.rstrip("/") + "/", protected.rstrip("/") + "/"
    return p.startswith(s) or s.startswith(p)


def host_path(access: Access, base: str, home: str) -> str | None:
    """The absolute host path a ``bind:``/``file:`` access names: a relative source resolved
    against ``base`` (where the compose files are), ``~`` against ``home``; None for others."""
    if not access.item.startswith(("bind:", "file:")) or access.source is None:
        return None
    src = access.source.strip()
    if src == "~" or src.startswith("~/"):
        src = home + src[1:]
    elif not src.startswith("/"):
        if _inside(src):
            return None  # the recipe's own files (its checkout may well be in the state dir)
        src = posixpath.join(base, src)
    return canonical_path(posixpath.normpath(src)) if src.startswith("/") else None


def reaching(
    asked: Iterable[Access], protected: Mapping[str, Iterable[str]], base: str, home: str
) -> list[tuple[Access, str]]:
    """Each bind or host file of ``asked`` that is, is above or is inside one of canon's places
    (``protected``: what it is -> its absolute paths, e.g. the state dir as written and
    resolved): refused even when accepted.  (access, what it reaches), each access once."""
    out = []
    for a in asked:
        path = host_path(a, base, home)
        if path is None:
            continue
        for what, paths in protected.items():
            if any(covers(path, p) for p in paths):
                out.append((a, what))
                break
    return out


# -- the compose walk --------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node]:
    """A mapping node's keys -> value nodes, merge keys (``<<``) followed."""
    import yaml  # deferred: ~15 ms that a sweep with nothing to test never needs

    if not isinstance(node, yaml.MappingNode):
        return {}
    own: dict[str, yaml.Node] = {}
    merged: dict[str, yaml.Node] = {}
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            continue
        if k.value == "<<":
            for src in v.value if isinstance(v, yaml.SequenceNode) else [v]:
                for mk, mv in _mapping(src).items():
                    merged.setdefault(mk, mv)
        else:
            own[k.value] = v
    return {**merged, **own}


def _items(node: yaml.Node | None) -> list[yaml.Node]:
    import yaml  # deferred: see _mapping

    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _scalar(node: yaml.Node | None, env: Mapping[str, str]) -> str | None:
    import yaml  # deferred: see _mapping

    if isinstance(node, yaml.ScalarNode):
        return interpolate(str(node.value), env)
    return None


class _Reader:
    def __init__(self, name: str, env: Mapping[str, str]):
        self.name = name
        self.env = env
        self.found: list[Access] = []

    def add(
        self, item: str, node: yaml.Node, service: str | None, source: str | None = None
    ) -> None:
        self.found.append(Access(item, self.name, _line(node), service, source))

    def text(self, node: yaml.Node | None) -> str | None:
        return _scalar(node, self.env)

    def service(self, name: str, spec: yaml.Node, host_networks: set[str]) -> None:
        s = _mapping(spec)
        for vol in _items(s.get("volumes")):
            self.volume(vol, name)
        if "privileged" in s:
            value = (self.text(s["privileged"]) or "").strip().lower()
            if value not in _FALSE:
                self.add("privileged", s["privileged"], name)
        for cap in _items(s.get("cap_add")):
            text = (self.text(cap) or "").strip().upper().removeprefix("CAP_")
            if text:
                self.add(f"cap_add:{text}", cap, name)
        for dev in _items(s.get("devices")):
            text = (self.text(dev) or "").strip()
            if text:
                host = text.split(":", 1)[0] if text.startswith("/") else text
                self.add(
                    f"devices:{canonical_path(host) if host.startswith('/') else host}", dev, name
                )
        for opt in _items(s.get("security_opt")):
            text = (self.text(opt) or "").strip()
            spelt = re.sub(r"^([A-Za-z_-]+)[:=]", r"\1=", text)
            if text and spelt not in _HARMLESS_OPTS:
                self.add(f"security_opt:{spelt}", opt, name)
        self.sysctls(s.get("sysctls"), name)
        for key in HOST_MODES:
            if key in s and (self.text(s[key]) or "").strip().lower() == "host":
                self.add(f"{key}:host", s[key], name)
        networks = s.get("networks")
        names = [(self.text(n), n) for n in _items(networks)]
        names += [(k, v) for k, v in _mapping(networks).items()]
        for net, node in names:
            if net and (net == "host" or net in host_networks):
                self.add("network_mode:host", node, name)
        for port in _items(s.get("ports")):
            p = _mapping(port)
            if (self.text(p.get("mode")) or "").strip().lower() == "host":
                published = self.text(p.get("published")) or self.text(p.get("target")) or "*"
                proto = (self.text(p.get("protocol")) or "tcp").strip().lower()
                suffix = "" if proto == "tcp" else f"/{proto}"
                self.add(f"ports:host:{published.strip()}{suffix}", port, name)

    def sysctls(self, node: yaml.Node | None, service: str) -> None:
        for item in _items(node):
            text = (self.text(item) or "").strip()
            if text:
                self.add(f"sysctls:{text.split('=', 1)[0].strip()}", item, service)
        for key, value in _mapping(node).items():
            self.add(f"sysctls:{interpolate(key, self.env).strip()}", value, service)

    def volume(self, node: yaml.Node, service: str) -> None:
        text = self.text(node)
        if text is not None:
            parts = text.split(":")
            source = parts[0] if len(parts) > 1 else ""
            if source and is_host_path(source):
                self.add(f"bind:{canonical_path(source)}", node, service, source)
            return
        v = _mapping(node)
        kind = (self.text(v.get("type")) or "").strip()
        source = (self.text(v.get("source")) or "").strip()
        if kind == "bind" or (not kind and source and is_host_path(source)):
            self.add(f"bind:{canonical_path(source or '.')}", node, service, source or ".")

    def top_level(self, doc: dict[str, yaml.Node]) -> set[str]:
        """Binds in disguise and host files in the top-level tables; the networks that are
        the host's."""
        for spec in _mapping(doc.get("volumes")).values():
            opts = _mapping(_mapping(spec).get("driver_opts"))
            o = (self.text(opts.get("o")) or "").split(",")
            device = (self.text(opts.get("device")) or "").strip()
            if "bind" in (x.strip() for x in o) and device:
                self.add(f"bind:{canonical_path(device)}", spec, None, device)
        for table in ("configs", "secrets"):
            for spec in _mapping(doc.get(table)).values():
                f = _mapping(spec).get("file")
                path = (self.text(f) or "").strip()
                if f is not None and path and not _inside(path):
                    self.add(f"file:{canonical_path(path)}", f, None, path)
        host = set()
        for key, spec in _mapping(doc.get("networks")).items():
            if (self.text(_mapping(spec).get("name")) or "").strip() == "host":
                host.add(key)
        return host


def _inside(path: str) -> bool:
    """A relative path that stays inside the recipe (where a compose file's paths start)."""
    if path.startswith(("/", "~")):
        return False
    norm = posixpath.normpath(path)
    return norm != ".." and not norm.startswith("../")


def read_host_access(files: Sequence[tuple[str, str]], env: Mapping[str, str]) -> list[Access]:
    """Everything the compose ``files`` ((name, text), in ``COMPOSE_FILE`` order) ask of the
    host, rendered with ``env``; sorted by file order, then line.

    Raises :class:`ComposeUnreadable` for a file that is not a YAML mapping.
    """
    import yaml  # deferred: see _mapping

    found: list[Access] = []
    for name, text in files:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f":{mark.line + 1}" if mark else ""
            raise ComposeUnreadable(
                f"{name}{at} does not parse: {str(e).splitlines()[0]}"
            ) from None
        if root is None:
            continue
        if not isinstance(root, yaml.MappingNode):
            raise ComposeUnreadable(f"{name}:1 is not a compose file (not a mapping)")
        reader = _Reader(name, env)
        doc = _mapping(root)
        host_networks = reader.top_level(doc)
        for service, spec in _mapping(doc.get("services")).items():
            reader.service(service, spec, host_networks)
        found += sorted(reader.found, key=lambda a: a.line)
    return found


# -- consent -----------------------------------------------------------------------


def not_accepted(asked: Iterable[Access], accepted: Iterable[str]) -> list[Access]:
    """What is asked and not in ``accepted`` (HOST_ACCESS), each item once (its first place)."""
    ok = set(accepted)
    seen: set[str] = set()
    out = []
    for a in asked:
        if a.item not in ok and a.item not in seen:
            seen.add(a.item)
            out.append(a)
    return out


def meta_line(accepted: Iterable[str], new: Iterable[Access]) -> str:
    """The exact ``HOST_ACCESS = [...]`` line that accepts ``new`` on top of ``accepted``."""
    items = list(dict.fromkeys([*accepted, *(a.item for a in new)]))
    return "HOST_ACCESS = [" + ", ".join(f'"{i}"' for i in items) + "]"


_HEADS = (
    "bind",
    "file",
    "cap_add",
    "devices",
    "security_opt",
    "sysctls",
    "ports",
    *HOST_MODES,
)
_EXAMPLES = (
    "privileged",
    f"bind:{SOCKET}",
    *(f"{k}:host" for k in HOST_MODES),
    "cap_add:SYS_ADMIN",
    "ports:host:80",
)


def canonical_entry(entry: str) -> str | None:
    """The canonical spelling of a ``HOST_ACCESS`` entry, or None when it is no known item."""
    text = entry.strip()
    if text == "privileged":
        return text
    head, sep, rest = text.partition(":")
    head = head.strip().lower()
    rest = rest.strip()
    if not sep or not rest:
        return None
    if head in ("bind", "file"):
        if not is_host_path(rest):
            return None
        return f"{head}:{canonical_path(rest.split(':', 1)[0] if rest != '/' else rest)}"
    if head == "cap_add":
        cap = rest.upper().removeprefix("CAP_")
        return f"cap_add:{cap}" if _CAP.fullmatch(cap) else None
    if head == "devices":
        host = rest.split(":", 1)[0] if rest.startswith("/") else rest
        return f"devices:{canonical_path(host) if host.startswith('/') else host}"
    if head == "security_opt":
        return "security_opt:" + re.sub(r"^([A-Za-z_-]+)[:=]", r"\1=", rest)
    if head == "sysctls":
        return f"sysctls:{rest.split('=', 1)[0].strip()}"
    if head in HOST_MODES:
        return f"{head}:host" if rest.lower() == "host" else None
    if head == "ports":
        m = re.fullmatch(r"host:(\*|\d{1,5}(?:-\d{1,5})?)(/(?:tcp|udp|sctp))?", rest.lower())
        if not m:
            return None
        return f"ports:host:{m[1]}{'' if m[2] in (None, '/tcp') else m[2]}"
    return None


def entry_problem(entry: object) -> str | None:
    """Why ``entry`` is not a HOST_ACCESS item as canon spells it (naming the closest
    spelling), or None when it is one."""
    if not isinstance(entry, str):
        return f"{entry!r} is not a string"
    spelt = canonical_entry(entry)
    if spelt == entry:
        return None
    if spelt is None:
        head, sep, rest = entry.partition(":")
        candidates = list(_EXAMPLES)
        if sep:
            candidates += [f"{h}:{rest}" for h in _HEADS]
        close = difflib.get_close_matches(entry, candidates, n=1, cutoff=0.5)
        fixed = canonical_entry(close[0]) if close else None
        hint = f"did you mean {fixed!r}?" if fixed else f"known kinds: {', '.join(_HEADS)}"
        return f"{entry!r} is not a host access item; {hint}"
    return f"{entry!r} is not how canon spells it; did you mean {spelt!r}?"


def host_access_problems(entries: Iterable[object]) -> list[str]:
    """One line per bad entry of a HOST_ACCESS list (empty: every entry is good)."""
    return [p for e in entries if (p := entry_problem(e))]
