"""L5 lint: the rules Co-op Cloud maintainers are held to, as pure functions of a release's files.

A rule abra's own lint has (``abra recipe lint``; ``pkg/lint/recipe.go`` in coop-cloud/abra)
keeps abra's id, ``R0xx``; canon's own rules are ``C0xx``.  canon's level can differ from
abra's (:data:`RULES` says where): canon lints a published release, not a work tree.  Each
:class:`Finding` names its rule, its level (an ``error`` fails the rung, a ``warn`` is reported
in the results row) and where it is: a file and line, or the tag.

Nothing here does I/O.  The files come through a :data:`Reader` (the harness reads the
checkout and the upgrade base's commit; the tests pass dicts), the tag's object type comes as
a word, and abra's own table comes in as text (:func:`parse_abra_table`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import yaml

from canonlib.files import FileProblem
from canonlib.recipe.versions import InvalidRecipeVersion, parse_version

ERROR, WARN = "error", "warn"
VERSION_LABEL = "coop-cloud.${STACK_NAME}.version"
DEFAULT_COMPOSE_FILE = "compose.yml"

Spec = Mapping[object, object]
"""A compose file, or a mapping in it, as YAML parsed it: any key (YAML's may be numbers),
any value; read with ``get`` and isinstance."""

Reader = Callable[[str], "str | None"]
"""A file's text by its path in the recipe; None when there is no such file.  It raises
:class:`~canonlib.files.FileProblem` for a file that is there but unusable (a link out, a FIFO)."""


@dataclass(frozen=True)
class Rule:
    id: str
    level: str  # canon's level; C002 also warns (see :func:`label_verdict`)
    what: str
    abra_level: str | None = None  # abra's level, where the rule is abra's


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("C001", ERROR, "every COMPOSE_FILE entry is in the recipe and parses as compose"),
        Rule("R008", ERROR, ".env.sample provided", ERROR),
        Rule("R009", ERROR, "one service named 'app'", ERROR),
        Rule("R011", ERROR, "all services have images", ERROR),
        Rule("R003", ERROR, "all images use a tag (or a digest)", WARN),
        Rule("R004", ERROR, "no unstable tags (latest)", WARN),
        Rule("R012", ERROR, "config versions are vendored (exported by abra.sh)", ERROR),
        Rule("C002", ERROR, f"the {VERSION_LABEL} label on app equals the tag"),
        Rule("C003", ERROR, "the tag parses as a recipe version"),
        Rule("R014", WARN, "only annotated tags used for recipe version", ERROR),
        Rule("C004", WARN, "a release note release/<tag>"),
        Rule(
            "C005", ERROR, "a config file changed since the upgrade base has its *_VERSION bumped"
        ),
    )
}


@dataclass(frozen=True)
class Finding:
    """One rule a release breaks: where (``file``, ``line``; none for the tag) and in what words."""

    rule: str
    level: str
    message: str
    file: str | None = None
    line: int | None = None
    source: str = "canon"  # or "abra": from abra's own table

    @property
    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        by = " (abra)" if self.source == "abra" else ""
        where = f" {self.where}" if self.where else ""
        return f"{self.rule}{by}{where}: {self.message}"


@dataclass(frozen=True)
class Base:
    """The release the upgrade starts from (in a sweep, the canonical), read at its commit."""

    kind: str
    version: str
    read: Reader


@dataclass(frozen=True)
class Release:
    """What L5 lints: the tag and the tree at it."""

    tag: str
    read: Reader
    compose_file: str | None = None  # COMPOSE_FILE as .env.sample sets it; None: unset
    tag_type: str | None = None  # "tag" (annotated), "commit" (lightweight), None (unknown)
    base: Base | None = None


# -- the compose files ----------------------------------------------------------


@dataclass(frozen=True)
class ComposeDoc:
    name: str
    data: Spec
    node: yaml.Node = field(repr=False)

    def line(self, *path: str | int) -> int | None:
        return node_line(self.node, *path)


def node_line(node: yaml.Node, *path: str | int) -> int | None:
    """The 1-based line of ``path`` (mapping keys, sequence indexes) in a composed YAML document;
    the deepest line found when the path stops early (an anchor, a merge key)."""
    import yaml  # deferred: see load_compose

    line = node.start_mark.line + 1
    for key in path:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _inside(path: str) -> str | None:
    """``path`` normalised, or None when it leaves the recipe."""
    rel = posixpath.normpath(path)
    return None if path.startswith("/") or rel == ".." or rel.startswith("../") else rel


def load_compose(release: Release) -> tuple[list[ComposeDoc], list[Finding]]:
    """Every COMPOSE_FILE entry, parsed (C001 for each that is missing or does not parse)."""
    import yaml  # deferred: ~15 ms that a sweep with nothing to test never needs

    docs, out = [], []
    names = [n for n in (release.compose_file or DEFAULT_COMPOSE_FILE).split(":") if n]
    for name in names:
        rel = _inside(name)
        if rel is None:
            out.append(_c001(f"COMPOSE_FILE entry {name!r} is outside the recipe", ".env.sample"))
            continue
        try:
            text = release.read(rel)
        except FileProblem as e:
            out.append(_c001(f"{rel} {e}", rel))
            continue
        if text is None:
            out.append(_c001(f"COMPOSE_FILE names {rel} but the release has no such file", rel))
            continue
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = mark.line + 1 if mark else None
            out.append(_c001(f"does not parse: {str(e).splitlines()[0]}", rel, line))
            continue
        if (
            node is None  # an empty file (data is None too)
            or not isinstance(data, dict)
            or not isinstance(data.get("services", {}), dict)
        ):
            out.append(_c001("is not a compose file (no services mapping)", rel, 1))
            continue
        docs.append(ComposeDoc(rel, data, node))
    if docs and not any(d.data.get("services") for d in docs):
        out.append(_c001("the compose files define no services", docs[0].name, 1))
    return docs, out


def _c001(message: str, file: str, line: int | None = None) -> Finding:
    return Finding("C001", ERROR, message, file, line)


Definitions = dict[str, list[tuple[ComposeDoc, Spec]]]


def services(docs: Iterable[ComposeDoc]) -> Definitions:
    """Each service name with its definitions, file by file, in COMPOSE_FILE order."""
    out: Definitions = {}
    for doc in docs:
        found = doc.data.get("services")  # a mapping when there (load_compose checked)
        for name, spec in found.items() if isinstance(found, dict) else ():
            out.setdefault(str(name), []).append((doc, spec if isinstance(spec, dict) else {}))
    return out


def check_services(docs: list[ComposeDoc], defs: Definitions) -> Iterator[Finding]:
    """R009 (a service named app), R011 (every service has an image)."""
    if docs and "app" not in defs:
        doc = docs[0]
        yield Finding(
            "R009",
            ERROR,
            "no service is named app (abra deploys, versions and runs commands in 'app')",
            doc.name,
            doc.line("services"),
        )
    for name, definitions in defs.items():
        if not any(_image(spec) for _doc, spec in definitions):
            doc = definitions[0][0]
            yield Finding(
                "R011", ERROR, f"service {name} has no image", doc.name, doc.line("services", name)
            )


def _image(spec: Spec) -> str | None:
    image = spec.get("image")
    if not isinstance(image, str):
        return None
    return image.strip() or None


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def image_pin_problem(image: str) -> tuple[str, str] | None:
    """Why ``image`` is not pinned, as (rule, words); None when it names a tag other than
    ``latest`` or a digest (``name@sha256:…`` and ``name:tag@sha256:…``).  An image with a
    ``$`` is interpolated at deploy time and left alone."""
    ref = image.strip()
    if "$" in ref:
        return None
    name, at, digest = ref.partition("@")
    if at:
        if _DIGEST.fullmatch(digest):
            return None
        return "R003", f"image {ref}: {digest!r} is not a sha256 digest"
    last = name.rsplit("/", 1)[-1]  # a registry's port (host:5000/x) is no tag
    tag = last.rpartition(":")[2] if ":" in last else ""
    if not tag:
        return "R003", f"image {ref} has no tag: pin it to a version tag or a digest"
    if tag == "latest":
        return "R004", f"image {ref} is :latest: pin it to a version tag or a digest"
    return None


def check_images(defs: Definitions) -> Iterator[Finding]:
    """R003 / R004: every image named is pinned to a tag or a digest, never ``latest``."""
    for name, definitions in defs.items():
        for doc, spec in definitions:
            image = _image(spec)
            problem = image_pin_problem(image) if image else None
            if problem:
                rule, words = problem
                line = doc.line("services", name, "image")
                yield Finding(rule, ERROR, f"service {name}: {words}", doc.name, line)


# -- the version label ----------------------------------------------------------


def labels(spec: Spec) -> list[tuple[str | int, str, str]]:
    """A service's deploy labels as (where in ``deploy.labels``, key, value)."""
    deploy = spec.get("deploy")
    found = deploy.get("labels") if isinstance(deploy, dict) else None
    if isinstance(found, dict):
        return [(str(k), str(k), "" if v is None else str(v)) for k, v in found.items()]
    if isinstance(found, list):
        out: list[tuple[str | int, str, str]] = []
        for i, item in enumerate(found):
            key, _, value = str(item).partition("=")
            out.append((i, key.strip(), value.strip()))
        return out
    return []


def label_verdict(label: str, tag: str) -> tuple[str, str] | None:
    """None when the label is the tag; (warn, words) when they are the same release once a
    leading ``v`` and a missing ``+app`` part are set aside (abra deploys it: it rewrites the
    label); (error, words) otherwise."""
    if label == tag:
        return None
    try:
        a, b = parse_version(label), parse_version(tag)
    except InvalidRecipeVersion:
        return ERROR, f"{VERSION_LABEL}={label} but the tag is {tag}"
    same_recipe = (a.major, a.minor, a.patch, a.prerelease) == (
        b.major,
        b.minor,
        b.patch,
        b.prerelease,
    )
    if same_recipe and (a.app == b.app or a.app is None or b.app is None):
        return WARN, (
            f"{VERSION_LABEL}={label} and the tag {tag} match only once a leading 'v' and a "
            "missing '+app' part are set aside (abra deploys it; name them alike)"
        )
    return ERROR, f"{VERSION_LABEL}={label} but the tag is {tag}"


def check_label(defs: Definitions, tag: str) -> Iterator[Finding]:
    """C002: the version label on app equals the tag (the last definition of it wins, as in
    compose's merge)."""
    found = None
    for doc, spec in defs.get("app", []):
        for where, key, value in labels(spec):
            if key == VERSION_LABEL:
                found = (doc, where, value)
    if "app" not in defs:
        return
    if found is None:
        doc = defs["app"][0][0]
        line = doc.line("services", "app")
        yield Finding(
            "C002", ERROR, f"service app carries no {VERSION_LABEL} label", doc.name, line
        )
        return
    doc, where, value = found
    verdict = label_verdict(value, tag)
    if verdict:
        level, words = verdict
        line = doc.line("services", "app", "deploy", "labels", where)
        yield Finding("C002", level, f"service app: {words}", doc.name, line)


# -- the tag and the recipe root ------------------------------------------------


def check_tag(release: Release) -> Iterator[Finding]:
    """C003: the tag is a recipe version; R014: it is an annotated tag."""
    tag = release.tag
    try:
        parse_version(tag)
    except InvalidRecipeVersion as e:
        yield Finding("C003", ERROR, str(e))
    if release.tag_type == "commit":
        yield Finding(
            "R014",
            WARN,
            f"tag {tag} is a lightweight tag; abra's lint (R014, an error there) wants an "
            "annotated one: git tag -a",
        )


def _present(read: Reader, path: str) -> bool:
    try:
        return read(path) is not None
    except FileProblem:
        return True


def check_root(release: Release) -> Iterator[Finding]:
    """R008: ``.env.sample`` at the root; C004: a release note ``release/<tag>`` (a warning)."""
    try:
        if release.read(".env.sample") is None:
            yield Finding("R008", ERROR, ".env.sample missing at the recipe's root", ".env.sample")
    except FileProblem as e:
        yield Finding("R008", ERROR, f".env.sample {e}", ".env.sample")
    tag = release.tag
    names = [f"release/{tag}"] + ([f"release/{tag[1:]}"] if tag.startswith("v") else [])
    if not any(_present(release.read, n) for n in names if _inside(n) == n):
        yield Finding(
            "C004",
            WARN,
            "no release note (a warning: real recipes ship releases without)",
            f"release/{tag}",
        )


# -- configs and their versions -------------------------------------------------

_VERSION_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*_VERSION)\b")
_EXPORT = re.compile(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(['\"]?)([^'\"\s#]*)\2\s*(?:#.*)?$")
_ENV_KEY = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")


def exports(abra_sh: str | None) -> dict[str, str]:
    """The literal ``export NAME=value`` lines of an ``abra.sh`` (read, never run)."""
    lines = (abra_sh or "").splitlines()
    return {m[1]: m[3] for line in lines if (m := _EXPORT.match(line))}


@dataclass(frozen=True)
class VersionedConfig:
    """A compose ``configs:`` entry whose name carries a ``*_VERSION`` (a swarm config is
    immutable: a changed file needs a new name, so a new version)."""

    key: str
    file: str | None
    variables: tuple[str, ...]
    doc: ComposeDoc = field(repr=False)


def versioned_configs(docs: Iterable[ComposeDoc]) -> list[VersionedConfig]:
    out = []
    for doc in docs:
        configs = doc.data.get("configs")
        for key, spec in (configs if isinstance(configs, dict) else {}).items():
            name = spec.get("name") if isinstance(spec, dict) else None
            variables = (
                tuple(dict.fromkeys(_VERSION_VAR.findall(name))) if isinstance(name, str) else ()
            )
            if variables:
                file = spec.get("file")
                path = _inside(file) if isinstance(file, str) else None
                out.append(VersionedConfig(str(key), path, variables, doc))
    return out


def _read_or_none(read: Reader, path: str) -> str | None:
    try:
        return read(path)
    except FileProblem:
        return None


def check_configs(release: Release, configs: list[VersionedConfig]) -> Iterator[Finding]:
    """R012: each config's ``*_VERSION`` is set (abra.sh, or .env.sample); C005: a config file
    that changed since the upgrade base has its version bumped."""
    if not configs:
        return
    try:
        abra_sh = release.read("abra.sh")
    except FileProblem as e:
        yield Finding("R012", ERROR, f"abra.sh {e}", "abra.sh")
        abra_sh = None
    now = exports(abra_sh)
    env = _read_or_none(release.read, ".env.sample") or ""
    env_keys = {m[1] for line in env.splitlines() if (m := _ENV_KEY.match(line))}
    for cfg in configs:
        for var in cfg.variables:
            if var not in now and var not in env_keys:
                line = cfg.doc.line("configs", cfg.key, "name")
                words = (
                    f"config {cfg.key} is named with ${{{var}}} but abra.sh does not export {var}"
                )
                yield Finding("R012", ERROR, words, cfg.doc.name, line)
    if release.base is not None:
        yield from _unbumped(release, release.base, configs, now)


def _unbumped(
    release: Release, base: Base, configs: list[VersionedConfig], now: dict[str, str]
) -> Iterator[Finding]:
    before = exports(_read_or_none(base.read, "abra.sh"))
    for cfg in configs:
        if cfg.file is None:
            continue
        old_text = _read_or_none(base.read, cfg.file)
        new_text = _read_or_none(release.read, cfg.file)
        if old_text is None or new_text is None or old_text == new_text:
            continue
        for var in cfg.variables:
            if before.get(var) is not None and before.get(var) == now.get(var):
                yield Finding(
                    "C005",
                    ERROR,
                    f"config {cfg.key}: {cfg.file} changed since {base.kind} {base.version} but "
                    f"{var} is still {now[var]} in abra.sh: bump it (a swarm config is "
                    "immutable, so the upgrade fails on a real server)",
                    cfg.doc.name,
                    cfg.doc.line("configs", cfg.key, "file"),
                )


# -- all of it --------------------------------------------------------------------


def lint(release: Release) -> list[Finding]:
    """Every finding of canon's rules for ``release``, in rule order within each check."""
    docs, findings = load_compose(release)
    defs = services(docs)
    findings += check_services(docs, defs)
    findings += check_images(defs)
    findings += check_label(defs, release.tag)
    findings += check_configs(release, versioned_configs(docs))
    findings += check_tag(release)
    findings += check_root(release)
    return findings


def merge(canon: Iterable[Finding], abra: Iterable[Finding]) -> list[Finding]:
    """canon's findings, then abra's for the rules canon did not flag.  A rule canon has too
    keeps canon's level (R014 warns here); a rule only abra has keeps abra's level."""
    out = list(canon)
    flagged = {f.rule for f in out}
    for f in abra:
        if f.rule in flagged:
            continue  # canon said it already, with the file and line
        out.append(replace(f, level=RULES[f.rule].level) if f.rule in RULES else f)
    return out


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == ERROR]


def warnings(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.level != ERROR]


# -- abra's own table -------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\r")
_CELL = re.compile(r"\s*[│┃|]\s*")
_REF = re.compile(r"R\d{3}")
_COLUMNS = ("ref", "rule", "severity", "satisfied", "skipped", "resolve")
_HEADER_WORDS = {
    "ref": "ref",
    "rule": "rule",
    "description": "rule",
    "severity": "severity",
    "level": "severity",
    "satisfied": "satisfied",
    "skipped": "skipped",
    "resolve": "resolve",
    "how to resolve": "resolve",
}


@dataclass(frozen=True)
class AbraTable:
    """What ``abra recipe lint`` printed: its failing rules, how many rows it had, and why it
    gave no verdict when it printed no table (a FATA line, nothing at all)."""

    findings: list[Finding]
    rows: int
    problem: str | None = None


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _CELL.split(line.strip().strip("│┃|"))]


def _yes(cell: str) -> bool:
    return "✅" in cell or "✔" in cell or cell.strip().lower() in ("yes", "true", "y")


def _no(cell: str) -> bool:
    return "❌" in cell or "✘" in cell or cell.strip().lower() in ("no", "false", "n")


def parse_abra_table(text: str) -> AbraTable:
    """abra's lint table (light ``│`` or heavy ``┃`` box lines, colour codes stripped) as
    findings: each row not satisfied and not skipped.  abra's exit code says nothing (0 with
    failing rules), so the table is the verdict."""
    lines = _ANSI.sub("", text).splitlines()
    columns: tuple[str, ...] = _COLUMNS
    rows = []
    for line in lines:
        cells = _cells(line)
        names = tuple(_HEADER_WORDS.get(c.lower(), c.lower()) for c in cells)
        row = dict(zip(columns, cells, strict=False))
        if "ref" in names and "severity" in names:
            columns = names
        elif _REF.fullmatch(row.get("ref", "")):
            rows.append(row)
    findings = []
    for row in rows:
        if not _no(row.get("satisfied", "")) or _yes(row.get("skipped", "")):
            continue
        level = ERROR if row.get("severity", "").lower() in (ERROR, "critical") else WARN
        resolve = row.get("resolve", "")
        words = row.get("rule", "") + (f" ({resolve})" if resolve else "")
        findings.append(Finding(row["ref"], level, words, source="abra"))
    problem = None
    if not rows:
        said = [ln.strip() for ln in lines if ln.strip()]
        fatal = next((ln for ln in said if "FATA" in ln), None)
        problem = f"no rule table in its output ({fatal or (said[-1] if said else 'no output')})"
    return AbraTable(findings, len(rows), problem)
