"""``.env`` files read as abra reads them.

abra (``abra app new``/``deploy``) reads an app's ``.env`` with a Go dotenv, a fork
of `joho/godotenv <https://github.com/joho/godotenv>`_ (1.5), whose ``Read`` this
module follows rule for rule (``parser.go``):

- blank lines and lines starting with ``#`` are skipped; ``export`` before a key is
  dropped; ``KEY=value`` and the YAML-ish ``KEY: value`` both assign; a key is
  letters, digits, ``_`` and ``.``, anything else there is an error;
- an unquoted value ends at the line's end, loses its surrounding blanks and a
  trailing comment (a ``#`` after a blank: the rightmost one), then ``$VAR`` and
  ``${VAR}`` expand;
- a ``'single-quoted'`` value is literal (it may span lines; ``\\'`` does not end it);
- a ``"double-quoted"`` value may span lines; ``\\n`` and ``\\r`` become line breaks,
  a backslash before any other character but ``$`` is dropped, then ``$VAR`` and
  ``${VAR}`` expand; ``\\$`` stays a literal ``$``;
- a name expands to its value from an earlier line of the same file, else from the
  process environment, else to nothing; only names of ``A-Z0-9_`` expand (``$lower``
  and ``$(cmd)`` stay as written); the braces are each optional (``${A`` and ``$A}``
  expand too, as in godotenv);
- a later line for the same key wins, so ``COMPOSE_FILE="$COMPOSE_FILE:compose.x.yml"``
  appends to the value so far: the idiom of every recipe with optional compose files.

Also as godotenv: ``\\r\\n`` is read as ``\\n`` and every ``---\\n`` as ``\\n`` (its
skip of a YAML document marker).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_BLANK = "\t\v\f\r \x85\xa0"  # godotenv's isSpace: blanks, not line breaks
_QUOTES = "'\""
_ESCAPE = re.compile(r"\\.")
_UNESCAPE = re.compile(r"\\([^$])")
_VARIABLE = re.compile(r"(\\)?(\$)(\()?\{?([A-Z0-9_]+)?\}?")


class EnvFileError(ValueError):
    """A line abra cannot read either; ``line`` is 1-based."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


def parse(text: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values of a ``.env`` file's ``text``, in file order; ``environ`` (default: this
    process's environment, as abra's) is where a name not set by an earlier line expands from.

    Raises :class:`EnvFileError` where godotenv fails: a bad key, an unterminated quote.
    """
    env = os.environ if environ is None else environ
    src = text.replace("---\n", "\n").replace("\r\n", "\n")
    out: dict[str, str] = {}
    pos: int | None = 0
    while (pos := _statement_start(src, pos)) is not None:
        key, pos = _key(src, pos)
        value, pos = _value(src, pos, out, env)
        out[key] = value
    return out


def _line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


def _is_whitespace(c: str) -> bool:
    """Go's unicode.IsSpace: line breaks too."""
    return c in _BLANK or c == "\n" or (c > "\xff" and c.isspace())


def _skip_blank(src: str, pos: int) -> int:
    while pos < len(src) and src[pos] in _BLANK:
        pos += 1
    return pos


def _statement_start(src: str, pos: int | None) -> int | None:
    """Where the next statement starts, past blank lines and comment lines; None at the end."""
    while pos is not None:
        while pos < len(src) and _is_whitespace(src[pos]):
            pos += 1
        if pos >= len(src):
            return None
        if src[pos] != "#":
            return pos
        eol = src.find("\n", pos)
        pos = None if eol == -1 else eol
    return None


def _key(src: str, pos: int) -> tuple[str, int]:
    """(the key, where its value starts)."""
    pos = _skip_blank(src, pos)
    if src.startswith("export", pos) and pos + 6 < len(src) and src[pos + 6] in _BLANK:
        pos = _skip_blank(src, pos + 6)
    start, key, offset = pos, "", pos
    for i in range(start, len(src)):
        c = src[i]
        if c in _BLANK or c == "_":
            continue
        if c in "=:":
            key, offset = src[start:i], i + 1
            break
        if not (c.isalpha() or c.isnumeric() or c == "."):
            name = src[start:i].strip()
            if c == "\n":
                raise EnvFileError(_line_of(src, start), f"{name!r} has no '='")
            raise EnvFileError(
                _line_of(src, i), f"unexpected character {c!r} in the variable name {name + c!r}"
            )
    if start >= len(src):
        raise EnvFileError(_line_of(src, start), "zero length string")
    return key.rstrip(), _skip_blank(src, offset)


def _value(src: str, pos: int, done: Mapping[str, str], env: Mapping[str, str]) -> tuple[str, int]:
    """(the value starting at ``pos``, where the rest of the file starts)."""
    if pos >= len(src) or src[pos] not in _QUOTES:
        return _unquoted(src, pos, done, env)
    quote = src[pos]
    for i in range(pos + 1, len(src)):
        if src[i] != quote or src[i - 1] == "\\":
            continue
        value = src[pos:i].rstrip(quote).lstrip(quote)
        if quote == '"':
            value = _expand(_unescape(value), done, env)
        return value, i + 1
    eol = src.find("\n", pos)
    raise EnvFileError(
        _line_of(src, pos), f"unterminated quoted value {src[pos : eol if eol != -1 else None]}"
    )


def _unquoted(
    src: str, pos: int, done: Mapping[str, str], env: Mapping[str, str]
) -> tuple[str, int]:
    eol = next((i for i in range(pos, len(src)) if src[i] in "\n\r"), len(src))
    line = src[pos:eol]
    end = len(line)
    for i in range(len(line) - 1, 0, -1):  # the rightmost `#` after a blank starts a comment
        if line[i] == "#" and line[i - 1] in _BLANK:
            end = i
            break
    return _expand(line[:end].strip(_BLANK), done, env), eol


def _unescape(value: str) -> str:
    """A double-quoted value's escapes: ``\\n``, ``\\r``; ``\\x`` is ``x`` unless x is ``$``."""

    def one(m: re.Match[str]) -> str:
        return {"\\n": "\n", "\\r": "\r"}.get(m[0], m[0])

    return _UNESCAPE.sub(r"\1", _ESCAPE.sub(one, value))


def _expand(value: str, done: Mapping[str, str], env: Mapping[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m[1]:  # \$NAME: a literal $NAME
            return m[0][1:]
        name = m[4]
        if not name:
            return m[0]
        return done[name] if name in done else env.get(name, "")

    return _VARIABLE.sub(one, value)
