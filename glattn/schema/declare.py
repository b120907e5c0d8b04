"""The declaration helper and what follows from a declaration: `field` gives a config key
its default, one-line meaning and accepted values (bounds, choices, a pattern); `expected`
words them for messages and the reference, `accepts` checks a value, `value_error` writes the
``key=value: expected ...`` line. The declarations themselves: glattn.schema.nodes."""

from __future__ import annotations

import dataclasses as dc
import math
import re
import typing
from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from glattn.secrets import mask_container


def field(
    default: Any,
    help: str,  # noqa: A002 - the word argparse and click use
    *,
    ge: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    choices: tuple = (),
    ignore_case: bool = False,
    pattern: str | None = None,
    expect: str | None = None,
    nonempty: bool = False,
):
    """A declared key: its default, one-line meaning (`help`) and what values it accepts
    (bounds `ge`/`gt`/`lt`, `choices`, a `pattern` each value or list item fully matches,
    with `expect` the words for it; `nonempty` for strings)."""
    meta = dict(
        help=help,
        ge=ge,
        gt=gt,
        lt=lt,
        choices=tuple(choices),
        ignore_case=ignore_case,
        pattern=pattern,
        expect=expect,
        nonempty=nonempty,
    )
    if isinstance(default, (list, dict)):
        return dc.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dc.field(default=default, metadata=meta)


def defaults_of(schema: type) -> dict:
    """{key: default} of a declaration."""
    return {f.name: _default(f) for f in fields(schema)}


def _default(f: dc.Field):
    return f.default_factory() if f.default is dc.MISSING else f.default


def declared_type(schema: type, name: str) -> tuple[Any, bool]:
    """(the type without None, whether null is allowed) of field `name`."""
    hint = typing.get_type_hints(schema)[name]
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return hint, hint is Any


def _bounds(m: dict, integer: bool) -> str:
    if m["ge"] is not None and m["lt"] is not None:
        return f" >= {m['ge']} and < {m['lt']}" if integer else f" in [{m['ge']}, {m['lt']})"
    parts = [
        f"{op} {m[k]}" for k, op in (("ge", ">="), ("gt", ">"), ("lt", "<")) if m[k] is not None
    ]
    return (" " + " and ".join(parts)) if parts else ""


def _show(choice) -> str:
    return str(choice).lower() if isinstance(choice, bool) else str(choice)


def expected(schema: type, name: str) -> str:
    """What field `name` accepts, in words (``an integer >= 1``, ``one of max, min``)."""
    m = {f.name: f for f in fields(schema)}[name].metadata
    kind, optional = declared_type(schema, name)
    if m["expect"]:
        text = m["expect"]
    elif m["choices"]:
        text = "one of " + ", ".join(_show(c) for c in m["choices"])
    elif kind is bool:
        text = "true or false"
    elif kind is int:
        text = "an integer" + _bounds(m, True)
    elif kind is float:
        text = "a number" + _bounds(m, False)
    elif kind is str:
        text = "a non-empty string" if m["nonempty"] else "a string"
    elif typing.get_origin(kind) is list:
        text = "a list"
    elif typing.get_origin(kind) is dict:
        text = "a mapping"
    else:
        text = "any value"
    return f"null or {text}" if optional and kind is not Any else text


def _is_type(kind, value) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
        )
    if kind is str:
        return isinstance(value, str)
    if typing.get_origin(kind) is list:
        return isinstance(value, (list, tuple, ListConfig))
    if typing.get_origin(kind) is dict:
        return isinstance(value, (dict, DictConfig))
    return True


def _in_range(m: dict, value) -> bool:
    return not (
        (m["ge"] is not None and value < m["ge"])
        or (m["gt"] is not None and value <= m["gt"])
        or (m["lt"] is not None and value >= m["lt"])
    )


def _is_choice(m: dict, value) -> bool:
    for choice in m["choices"]:
        if isinstance(choice, bool) or isinstance(value, bool):
            if value is choice:
                return True
        elif m["ignore_case"] and str(value).lower() == str(choice).lower():
            return True
        elif value == choice:
            return True
    return False


def accepts(schema: type, name: str, value) -> bool:
    """Whether `value` is a valid value of field `name` (type, choices, pattern, range)."""
    m = {f.name: f for f in fields(schema)}[name].metadata
    kind, optional = declared_type(schema, name)
    if value is None:
        return optional
    if m["choices"]:
        return _is_choice(m, value)
    if not _is_type(kind, value):
        return False
    items = value if typing.get_origin(kind) is list else [value]
    if m["pattern"] and not all(re.fullmatch(m["pattern"], str(v)) for v in items):
        return False
    if m["nonempty"] and not str(value).strip():
        return False
    return _in_range(m, value) if kind in (int, float) else True


def choices_of(schema: type, name: str) -> tuple:
    """The allowed values of field `name` (its `choices`)."""
    return {f.name: f for f in fields(schema)}[name].metadata["choices"]


def value_error(schema: type, node, path: str, name: str) -> str | None:
    """``path.name=value: expected ...`` when the value in `node` is not accepted (or does
    not resolve), else None. A key absent from an open node is not checked."""
    try:
        if name not in node:
            return None
        value = node[name]
    except Exception as exc:  # an interpolation that does not resolve
        return f"{path}{name}: {exc}"
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if accepts(schema, name, value):
        return None
    key = f"{path}{name}"
    return f"{key}={mask_container(value, key)!r}: expected {expected(schema, name)}"
