"""Command-line flags generated from the configuration dataclasses, so every field a YAML config holds is also a
flag, described by the field's docstring, and no option is mapped by hand in two places.

``add_dataclass_options(parser, RunConfig, flatten={"fit": ""})`` adds ``--lr``, ``--batch-size``,
``--split-seed``, ``--augment-noise-mv``, ... ; :func:`collect_overrides` turns the parsed flags back into a
nested dict of the fields that were given, to merge over a YAML config.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

DEST_PREFIX = "cfg__"


def field_docs(cls: type) -> dict[str, str]:
    """Field descriptions from the ``Attributes:`` section of a dataclass's Google-style docstring."""
    doc = cls.__doc__ or ""
    if "Attributes:" not in doc:
        return {}
    docs: dict[str, str] = {}
    current = None
    for line in doc.split("Attributes:", 1)[1].splitlines():
        match = re.match(r"^\s{4,8}(\w+):\s*(.*)$", line)
        if match and match.group(1).isidentifier() and not line.startswith(" " * 12):
            current = match.group(1)
            docs[current] = match.group(2)
        elif current and line.strip():
            docs[current] += " " + line.strip()
    return {k: v.replace("%", "%%") for k, v in docs.items()}


def _optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _scalar(kind: type, optional: bool):
    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null", "off"):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}{' or none' if optional else ''}, "
                                             f"got {text!r}") from None
    parse.__name__ = kind.__name__
    return parse


def _sequence(kind: type):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, "
                                             f"got {text!r}") from None
    parse.__name__ = f"list of {kind.__name__}"
    return parse


def case_insensitive(choices: Sequence[str]):
    """A flag type that takes a choice in any case (``lvh`` for ``LVH``); an unknown value passes unchanged, so
    argparse refuses it in one line with the valid choices."""
    canonical = {str(c).lower(): c for c in choices}

    def parse(text: str) -> str:
        return canonical.get(text.strip().lower(), text)
    parse.__name__ = "choice"
    return parse


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"{key}: cannot read value {value!r}") from None


def add_dataclass_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    flatten: Mapping[str, str] | None = None,
    skip: Sequence[str] = (),
    choices: Mapping[str, Sequence[str]] | None = None,
    flag_prefix: str = "",
    path: str = "",
) -> None:
    """Add one flag per field of ``cls`` (recursing into nested dataclasses).

    Args:
        flatten: nested field name -> flag prefix for its fields ("" puts ``fit.lr`` at ``--lr``); a nested
            dataclass not named here gets its own name as prefix (``--augment-noise-mv``).
        skip: dotted field paths to leave out (set by other flags).
        choices: dotted field path -> allowed values.
    """
    flatten = flatten or {}
    choices = choices or {}
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for item in dataclasses.fields(cls):
        dotted = f"{path}{item.name}"
        if dotted in skip:
            continue
        hint, optional = _optional(hints[item.name])
        if dataclasses.is_dataclass(hint):
            prefix = flatten.get(dotted, f"{item.name.replace('_', '-')}-")
            add_dataclass_options(parser, hint, flatten=flatten, skip=skip, choices=choices,
                                  flag_prefix=flag_prefix + prefix, path=f"{dotted}.")
            continue
        flag = f"--{flag_prefix}{item.name.replace('_', '-')}"
        dest = DEST_PREFIX + dotted.replace(".", "__")
        help_text = docs.get(item.name, "")
        default = item.default if item.default is not dataclasses.MISSING else None
        if default is not None and not isinstance(default, (dict, list)):
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            help_text += f" [default: {shown}]"
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": help_text}
        origin = typing.get_origin(hint)
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if origin is dict or hint is dict:
            parser.add_argument(flag, type=_key_value, action="append", metavar="KEY=VALUE", **kwargs)
            continue
        if origin is tuple:
            kwargs["type"] = _sequence(typing.get_args(hint)[0])
            kwargs["metavar"] = "A,B,..."
        else:
            kwargs["type"] = _scalar(hint, optional)
            kwargs["metavar"] = {int: "INT", float: "NUMBER", str: "TEXT"}.get(hint, "VALUE")
        if dotted in choices:
            kwargs["choices"] = list(choices[dotted])
            if hint is str:
                kwargs["type"] = case_insensitive(kwargs["choices"])
                kwargs.pop("metavar")
        parser.add_argument(flag, **kwargs)


def collect_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The dataclass fields given on the command line, as a nested dict (``{"fit": {"lr": 0.001}}``)."""
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if not dest.startswith(DEST_PREFIX):
            continue
        keys = dest[len(DEST_PREFIX):].split("__")
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = dict(value) if isinstance(value, list) and value and isinstance(value[0], tuple) else value
    return out


def merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in, recursively (dicts merge, everything else replaces)."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
