"""Command-line options made from a config dataclass, so that each setting is written once.

Every field of the dataclass becomes one option ``--field-name``, with the field's default, its type, and
the help text and choices from the field's metadata (``setting`` writes them in one line):

    @dataclass
    class Config:
        steps: int = setting(3000, "training steps")                       # --steps 3000
        kernel: Literal["laplace", "gaussian"] = setting("laplace", "kernel")  # --kernel {laplace,gaussian}
        dataset: str = setting("checkerboard", "toy", choices=DATASETS)   # choices from the metadata
        taus: tuple[float, ...] = setting((0.02, 0.05, 0.2), "temps")      # --taus 0.02 0.05 0.2
        corner: tuple[float, float] = setting((2.0, 0.0), "a point")       # --corner X Y
        ema: bool = setting(True, "keep an EMA")                           # --ema / --no-ema
        resume: str | None = setting(None, "checkpoint")                   # --resume PATH (default: none)

    parser = argparse.ArgumentParser()
    add_config_options(parser, Config)
    cfg = config_from_args(Config, parser.parse_args())

Types understood: int, float, str, pathlib.Path, bool, ``Literal[...]``, ``tuple[T, ...]`` (one or more values),
``tuple[T, T]`` (exactly that many) and ``T | None``. A field whose metadata has ``cli=False`` gets no option.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_SCALARS = (int, float, str, Path)


def setting(default: Any, help: str, *, choices: Iterable | None = None, cli: bool = True) -> Any:
    """A dataclass field with its default, help text and (optionally) choices: one line per knob."""
    metadata = {"help": help, "cli": cli}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata=metadata)


def _option_spec(name: str, hint: Any, metadata: dict) -> dict:
    """argparse keyword arguments (type, nargs, choices, action) for a field of type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:  # T | None: an option that may be absent
        (hint,) = [a for a in args if a is not type(None)]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    spec: dict = {}
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        spec = {"type": type(args[0]), "choices": list(args)}
    elif origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            spec = {"type": args[0], "nargs": "+"}
        elif args and all(a == args[0] for a in args):
            spec = {"type": args[0], "nargs": len(args)}
        else:
            raise TypeError(f"field {name!r}: a tuple option needs one element type, got {hint}")
    elif hint in _SCALARS:
        spec = {"type": hint}
    else:
        raise TypeError(f"field {name!r}: no command-line option for type {hint}")
    if "choices" in metadata:
        spec["choices"] = sorted(metadata["choices"])
    if spec.get("type") not in _SCALARS:
        raise TypeError(f"field {name!r}: no command-line option for element type {spec.get('type')}")
    return spec


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"field {f.name!r} has no default; every command-line setting needs one")


def add_config_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, config_cls: type) -> None:
    """Add one option per field of the dataclass ``config_cls`` (``--batch-gen`` for ``batch_gen``)."""
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        if not f.metadata.get("cli", True):
            continue
        default = _default(f)
        spec = _option_spec(f.name, hints[f.name], f.metadata)
        option = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            shown = option if default else "--no-" + option[2:]
        else:
            shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f.metadata.get("help", "").replace("%", "%%")
        help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
        parser.add_argument(
            option,
            dest=f.name,
            default=list(default) if isinstance(default, tuple) else default,
            help=help_text,
            metavar=f.name.upper() if "choices" not in spec and "action" not in spec else None,
            **spec,
        )


def config_from_args(config_cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The config that the parsed ``args`` describe (lists back to tuples), with ``overrides`` applied last."""
    values = {}
    for f in dataclasses.fields(config_cls):
        if f.init and hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return config_cls(**{**values, **overrides})


def given_options(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The destinations of the options written on the command line ``argv`` (defaults do not count), so that
    a preset can fill in the others: explicit flags win over a preset."""
    quiet = copy.deepcopy(parser)
    parsers = [quiet]
    while parsers:
        for action in parsers.pop()._actions:
            action.default = argparse.SUPPRESS
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return set(vars(quiet.parse_args(argv)))
