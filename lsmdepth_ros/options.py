"""Typed option dataclasses that document themselves.

A field made with `option()` carries its help text, whether it may change while running
(`live`), its allowed values (`choices`) and its inclusive numeric range (`bounds`). ROS
parameters (typed descriptors with ranges), CLI flags and config checks are derived from these
fields, so each setting is described once; `coerce` is the one place a raw value becomes the
option's type.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


def option(default: Any = dataclasses.MISSING, help: str = "", *, live: bool = False,
           choices: tuple = (), bounds: tuple | None = None,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with documentation metadata; `bounds` = (lowest, highest), inclusive."""
    meta = {"help": help, "live": live, "choices": tuple(choices), "bounds": bounds}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionInfo:
    name: str          # dotted path, e.g. "scale.factor"
    default: Any
    type: type
    help: str
    live: bool
    choices: tuple
    bounds: tuple | None = None     # (lowest, highest) allowed, inclusive; None: unbounded


def iter_options(cls_or_obj: Any, prefix: str = "") -> Iterator[OptionInfo]:
    """Flatten a (nested) options dataclass into dotted leaf options, defaults from `cls_or_obj`."""
    obj = cls_or_obj if not isinstance(cls_or_obj, type) else cls_or_obj()
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from iter_options(value, prefix=f"{name}.")
            continue
        meta = f.metadata or {}
        yield OptionInfo(name=name, default=value, type=type(value), help=meta.get("help", ""),
                         live=bool(meta.get("live", False)), choices=tuple(meta.get("choices", ())),
                         bounds=meta.get("bounds"))


def replace_dotted(obj: Any, name: str, value: Any) -> Any:
    """Copy of a (nested, frozen or not) dataclass with the dotted field `name` set to `value`."""
    head, _, rest = name.partition(".")
    if not rest:
        return dataclasses.replace(obj, **{head: value})
    return dataclasses.replace(obj, **{head: replace_dotted(getattr(obj, head), rest, value)})


def get_dotted(obj: Any, name: str) -> Any:
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def check_choices(obj: Any) -> None:
    """Raise ValueError naming the option when a value is not one of its choices."""
    for info in iter_options(obj):
        value = get_dotted(obj, info.name)
        if info.choices and value not in info.choices:
            raise ValueError(f"option '{info.name}' is {value!r}; expected one of "
                             f"{', '.join(map(repr, info.choices))}")


TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
              list: "a list", dict: "a mapping"}
# Words a config file or command line may use for a boolean (YAML 1.1's, which PyYAML reads).
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
               "false": False, "no": False, "off": False, "0": False}


def accepts(t: type, value: Any) -> bool:
    """Whether `value` is of option type `t` as it stands (a bool is not a number; an integer
    is a valid float)."""
    if t is bool:
        return isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, t)


def _from_text(t: type, text: str) -> Any:
    """Text as a bool / int / float (unchanged when it is none of them: the type check that
    follows names the problem)."""
    try:
        if t is bool:
            return _BOOL_WORDS.get(text.strip().lower(), text)
        if t is int:
            number = float(text)
            return int(number) if number.is_integer() else text
        if t is float:
            return float(text)
    except ValueError:
        pass
    return text


def coerce(info: OptionInfo, value: Any, *, from_text: bool = False) -> Any:
    """`value` as the option's type (an integer is accepted for a float option and converted);
    ValueError naming the option, the expected type and the range otherwise.

    ``from_text``: the value comes from a config file or a command line, where types are looser:
    text is read as the option's type ("8", "3e-4" -- which PyYAML leaves as a string --, "true",
    "off"), an integral float is accepted for an integer, and nothing (YAML's empty value) is ""
    for a string. ROS parameters are typed and never need it.
    """
    t = info.type
    if from_text:
        if value is None and t is str:
            value = ""
        elif isinstance(value, str) and t is not str:
            value = _from_text(t, value)
        elif t is int and isinstance(value, float) and value.is_integer():
            value = int(value)
    if not accepts(t, value):
        raise ValueError(f"option '{info.name}' must be {TYPE_WORDS.get(t, t.__name__)}, got "
                         f"{value!r} ({type(value).__name__})")
    value = float(value) if t is float else value
    if info.bounds is not None and not info.bounds[0] <= value <= info.bounds[1]:
        raise ValueError(f"option '{info.name}' must be between {info.bounds[0]} and "
                         f"{info.bounds[1]}, got {value!r}")
    return value
