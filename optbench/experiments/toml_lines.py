"""Line numbers for TOML keys: tomllib reports none for values, and an experiment file's
errors must name the line of the key at fault (experiment.py).

`KeyLocator(text).line(path)` gives the line where a key path such as
("optimizers", 2, "hyper", "b3") is assigned (array-of-tables entries counted from 0;
keys of an inline table at the line of the key holding it); `show_path(path)` writes it as
"optimizers[2].hyper.b3".
"""

from __future__ import annotations

import re
import tomllib

KeyPath = tuple  # a key path: ("optimizers", 2, "hyper", "b3")


class _ValueScanner:
    """Follows TOML value text across lines: open brackets and multi-line strings, so
    that lines inside a multi-line value are not taken for key assignments."""

    def __init__(self):
        self.depth = 0
        self.multiline: str | None = None  # '"""' or "'''" while inside one

    def open(self) -> bool:
        """Whether the value started on an earlier line continues."""
        return self.depth > 0 or self.multiline is not None

    def feed(self, text: str) -> None:
        """Scan one line (or the part of it after ``key =``)."""
        i = 0
        while i < len(text):
            if self.multiline is not None:
                i = self._close_multiline(text, i)
                continue
            c = text[i]
            if c == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.multiline, i = text[i:i + 3], i + 3
            elif c == '"':
                i = _skip_basic_string(text, i + 1)
            elif c == "'":
                end = text.find("'", i + 1)
                i = len(text) if end < 0 else end + 1
            else:
                self.depth += (c in "[{") - (c in "]}")
                i += 1

    def _close_multiline(self, text: str, i: int) -> int:
        while i < len(text):
            if self.multiline == '"""' and text[i] == "\\":
                i += 2
            elif text.startswith(self.multiline, i):
                self.multiline = None
                return i + 3
            else:
                i += 1
        return i


def _skip_basic_string(text: str, i: int) -> int:
    """Index after the closing quote of a "basic string" whose body starts at i."""
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    return i


_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_ASSIGNMENT = re.compile(rf"\s*({_KEY})\s*=")
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_KEY})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_KEY})\s*\]")


def _key_parts(key: str) -> tuple[str, ...]:
    """The parts of a dotted TOML key, quotes removed (tomllib decodes the escapes)."""
    parts = []
    for m in re.finditer(_KEY_PART, key):
        p = m.group(0)
        parts.append(next(iter(tomllib.loads(f"{p} = 0"))) if p[0] in "\"'" else p)
    return tuple(parts)


class KeyLocator:
    """Line numbers of the keys of a TOML text (tomllib gives none for values): the line
    of every table header and every ``key =``, by key path; an inline table's keys are
    found at the line of the key that holds it."""

    def __init__(self, text: str):
        self.where: dict[KeyPath, int] = {}
        self._entries: dict[KeyPath, int] = {}  # array-of-tables path -> entries so far
        table: KeyPath = ()
        value = _ValueScanner()
        for lineno, line in enumerate(text.splitlines(), 1):
            if value.open():
                value.feed(line)
                continue
            if m := _ARRAY_HEADER.match(line):
                table = self._header(_key_parts(m.group(1)), lineno, array=True)
            elif m := _TABLE_HEADER.match(line):
                table = self._header(_key_parts(m.group(1)), lineno, array=False)
            elif m := _ASSIGNMENT.match(line):
                self._record(table + _key_parts(m.group(1)), lineno)
                value.feed(line[m.end():])

    def _header(self, parts: tuple[str, ...], lineno: int, array: bool) -> KeyPath:
        path: KeyPath = ()
        for k, part in enumerate(parts):
            path += (part,)
            last = k == len(parts) - 1
            if array and last:
                self._entries[path] = self._entries.get(path, 0) + 1
                self.where.setdefault(path, lineno)
            if path in self._entries:  # inside an array of tables: its latest entry
                path += (self._entries[path] - 1,)
        self._record(path, lineno)
        return path

    def _record(self, path: KeyPath, lineno: int) -> None:
        for k in range(1, len(path) + 1):
            self.where.setdefault(path[:k], lineno)

    def line(self, path: KeyPath) -> int:
        """The line of `path`, or of its longest prefix found (1 when none is)."""
        for k in range(len(path), 0, -1):
            if path[:k] in self.where:
                return self.where[path[:k]]
        return 1


def show_path(path: KeyPath) -> str:
    """("optimizers", 2, "hyper", "b3") -> "optimizers[2].hyper.b3"."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out
