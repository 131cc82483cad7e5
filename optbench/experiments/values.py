"""The typed values of an experiment file, each checked with an error that starts with
``FILE:LINE:`` and names the key path (`ExperimentError`), and the ``${name}`` path
variables of its [paths] table."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optbench.experiments.toml_lines import KeyLocator, KeyPath, show_path

# Labels name files and folders (the store's results/<name>/): a letter or digit first, so
# that "." and ".." (and hidden names) cannot climb out of results/.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VARIABLE_USE = re.compile(r"\$\{([^}]*)\}")


class ExperimentError(ValueError):
    """A problem in an experiment file; the message starts with ``FILE:LINE:`` and names
    the key path."""


@dataclass
class _Context:
    """What every check needs: the file's name (as given) and folder, its line locator
    and the variables of [paths]."""

    file: str
    folder: Path
    locator: KeyLocator
    variables: dict[str, str] = field(default_factory=dict)

    def error(self, path: KeyPath, message: str) -> ExperimentError:
        """The error for `message` about `path`, located at its line."""
        where = f"{show_path(path)}: " if path else ""
        return ExperimentError(f"{self.file}:{self.locator.line(path)}: {where}{message}")

    def resolve(self, text: str) -> str:
        """`text` as an absolute, normalised path (relative: against the file's folder)."""
        return _absolute(text, self.folder)


def _absolute(text: str, base: Path) -> str:
    p = Path(text).expanduser()
    return os.path.normpath(p if p.is_absolute() else base / p)


# ------------------------------------------------------------------- typed values


def _kind(value: Any) -> str:
    """How a TOML value is called in messages."""
    names = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
             (list, "a list"), (dict, "a table"))
    for t, name in names:
        if isinstance(value, t):
            return f"{name} ({value!r})" if isinstance(value, (bool, int, float, str)) else name
    return f"a {type(value).__name__} ({value!r})"


def _expect(ctx: _Context, path: KeyPath, value: Any, what: str) -> ExperimentError:
    return ctx.error(path, f"expected {what}, got {_kind(value)}")


def _number(ctx: _Context, path: KeyPath, value: Any, minimum: float | None = None,
            above: float | None = None) -> float:
    """`value` as a finite float (an integer is accepted), >= minimum / > above."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _expect(ctx, path, value, "a finite number")
    if minimum is not None and value < minimum:
        raise ctx.error(path, f"must be >= {minimum:g}, got {value!r}")
    if above is not None and not value > above:
        raise ctx.error(path, f"must be > {above:g}, got {value!r}")
    return float(value)


def _integer(ctx: _Context, path: KeyPath, value: Any, minimum: int | None = None) -> int:
    """`value` as an int (a whole float such as 6.0 is accepted), >= minimum."""
    whole = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise _expect(ctx, path, value, "an integer")
    if minimum is not None and value < minimum:
        raise ctx.error(path, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _string(ctx: _Context, path: KeyPath, value: Any) -> str:
    if not isinstance(value, str):
        raise _expect(ctx, path, value, "a string")
    return value


def _label(ctx: _Context, path: KeyPath, value: Any) -> str:
    text = _string(ctx, path, value)
    if not _LABEL.match(text):
        raise ctx.error(path, f"{text!r}: use letters, digits, '_', '.' and '-' only, starting with a letter or digit")
    return text


def _table(ctx: _Context, path: KeyPath, value: Any) -> dict:
    if not isinstance(value, dict):
        raise _expect(ctx, path, value, "a table")
    return value


def _string_list(ctx: _Context, path: KeyPath, value: Any) -> list[str]:
    """A non-empty list of distinct strings."""
    if not isinstance(value, list) or not value:
        raise _expect(ctx, path, value, "a non-empty list of strings")
    items = [_string(ctx, path + (i,), v) for i, v in enumerate(value)]
    if len(set(items)) != len(items):
        raise ctx.error(path, f"repeated item in {items}")
    return items


def _check_keys(ctx: _Context, path: KeyPath, table: dict, known: tuple[str, ...]) -> None:
    """ExperimentError at the first key of `table` that is not in `known`."""
    for key in table:
        if key not in known:
            where = f"in [{show_path(path)}]" if path else "at the top level"
            raise ctx.error(path + (key,), f"unknown key {where}; known: {', '.join(known)}")


def _exactly_one(ctx: _Context, path: KeyPath, table: dict, a: str, b: str) -> str:
    """Which of the keys `a`, `b` the table has; an error unless exactly one."""
    if (a in table) == (b in table):
        where = path + ((b,) if b in table else ())
        raise ctx.error(where, f"give exactly one of {a}, {b}")
    return a if a in table else b


def _fmt_number(v: float | int) -> str:
    """A number in labels and budget strings: whole numbers without ".0", others with
    the shortest text that reads back to the same float."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _show_value(v: Any) -> str:
    """A setting's value in a variant label."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _fmt_number(v)
    if isinstance(v, list):
        return "[" + ",".join(_show_value(x) for x in v) + "]"
    return str(v)


# ------------------------------------------------------------------- variables


def _read_variables(ctx: _Context, raw: Any, overrides: dict[str, str]) -> dict[str, str]:
    """The variables of [paths] (absolute paths), with `overrides` and OPTBENCH_<NAME>
    environment variables taking precedence; `overrides` may add names."""
    table = _table(ctx, ("paths",), raw)
    cwd = Path.cwd()
    out = {k: _absolute(str(v), cwd) for k, v in overrides.items()}
    for name, value in table.items():
        path = ("paths", name)
        if not _VARIABLE_NAME.match(name):
            raise ctx.error(path, "a variable name must match [A-Za-z_][A-Za-z0-9_]*")
        if name in out:
            continue
        env = os.environ.get(f"OPTBENCH_{name.upper()}")
        if env:
            out[name] = _absolute(env, cwd)
            continue
        ctx.variables = out  # earlier variables are usable in later ones
        out[name] = ctx.resolve(_substitute_text(ctx, path, _string(ctx, path, value)))
    return out


def _substitute_text(ctx: _Context, path: KeyPath, text: str) -> str:
    """`text` with every ${name} replaced by its variable's value."""
    def value(m: re.Match) -> str:
        name = m.group(1)
        if name not in ctx.variables:
            known = ", ".join(sorted(ctx.variables)) or "none"
            raise ctx.error(path, f"undefined variable ${{{name}}}: declare it in [paths] (OPTBENCH_"
                                  f"{name.upper()} then overrides it) or pass it as a variable "
                                  f"(defined: {known})")
        return ctx.variables[name]

    return _VARIABLE_USE.sub(value, text)


def _substitute(ctx: _Context, path: KeyPath, value: Any) -> Any:
    """`value` (any TOML value) with variables substituted in all its strings."""
    if isinstance(value, str):
        return _substitute_text(ctx, path, value)
    if isinstance(value, list):
        return [_substitute(ctx, path + (i,), v) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _substitute(ctx, path + (k,), v) for k, v in value.items()}
    return value


def _existing_file(ctx: _Context, path: KeyPath, raw: Any, what: str) -> str:
    """`raw` resolved to an absolute path of an existing file."""
    resolved = ctx.resolve(_string(ctx, path, raw))
    if not Path(resolved).is_file():
        hint = "" if not ctx.variables else f" (variables: {', '.join(f'{k}={v}' for k, v in ctx.variables.items())})"
        raise ctx.error(path, f"{what} not found: {resolved}{hint}")
    return resolved
