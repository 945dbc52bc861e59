"""Command-line options made from settings dataclasses: one place for every help text.

A settings dataclass documents each field with a string literal right after it (as
cleanrl's ``Args`` do). :func:`add_options` turns chosen fields into argparse options
whose help is that docstring, so the CLI never retypes what a setting means.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring of each field of dataclass ``cls`` (and its bases), by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def doc(cls: type, name: str) -> str:
    """One field's docstring; a missing one is a programming error, caught by the tests."""
    try:
        return field_docs(cls)[name]
    except KeyError:
        raise KeyError(f"{cls.__name__}.{name} has no docstring") from None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(the type an option parses to, whether it takes several values)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else (str, False)
    if origin is tuple:
        args = typing.get_args(hint)
        return (args[0], True) if len(args) == 2 and args[1] is Ellipsis else (tuple, False)
    return hint, False


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    names: list[str],
    **overrides: dict,
) -> None:
    """Add ``--field-name`` options for ``names`` of dataclass ``cls``.

    The help is the field's docstring followed by its default; the type, the default and
    whether it takes several values come from the field. ``overrides[name]`` replaces or
    adds argparse keywords (a validating ``type``, ``choices``, ``default``, ``required``).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names:
        f, extra = fields[name], dict(overrides.get(name, {}))
        kind, many = _base_type(hints[name])
        flag = extra.pop("flag", "--" + name.replace("_", "-"))
        default = extra.pop("default", _default(f))
        shown = extra.pop("shown", None)
        text = doc(cls, name)
        if kind is bool:
            kw: dict[str, Any] = {"action": "store_true", "default": bool(default)}
        else:
            kw = {"type": Path if kind is Path else kind, "default": default}
            if many:
                kw["nargs"] = "+"
            if shown is None:
                shown = " ".join(map(str, default)) if many and default else default
            if default is not None and not extra.get("required"):
                text += f" (default: {shown})"
        if "choices" in extra and "metavar" in extra:  # the metavar hides them from the usage line
            text += (
                f"; one or more of: {', '.join(map(str, extra['choices']))}"
                if many
                else (f"; one of: {', '.join(map(str, extra['choices']))}")
            )
        kw.update(extra)
        parser.add_argument(flag, dest=name, help=text.replace("%", "%%"), **kw)


def pick(args: argparse.Namespace, cls: type, **fixed: Any) -> Any:
    """An instance of dataclass ``cls`` from the parsed options that name its fields."""
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.init and hasattr(args, f.name)
    }
    values.update(fixed)
    for f in dataclasses.fields(cls):
        v = values.get(f.name)
        if isinstance(v, list):
            values[f.name] = tuple(v)
    return cls(**values)
