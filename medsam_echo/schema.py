"""Typed validation of plain data (YAML, JSON) into dataclasses: the one place config types are checked.

Used by the experiment config (``training/config.py``), the fine-tuning method (``method.json``), the
preprocessing profile (``preprocessing.json``) and TinyViT shapes saved in ``config.json``: an unknown key or
a value of the wrong type is a :class:`ConfigError` naming the dotted key (``optim.lr: expected float,
got 'fast'``).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing

_YAML11_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


class ConfigError(ValueError):
    """A config file, override or saved description is invalid; the message names the key."""


def _coerce(value, hint, key: str):
    """Check ``value`` against the type ``hint`` (recursing into dataclasses and lists)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            raise ConfigError(f"{key}: expected {len(items)} values, got {value!r}")
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, (v, item) in enumerate(zip(value, items, strict=True)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        k_type, v_type = typing.get_args(hint)
        return {_coerce(k, k_type, key): _coerce(v, v_type, f"{key}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _YAML11_FLOAT.match(value.strip()):
        return float(value)  # PyYAML (YAML 1.1) reads `1e-4` as a string; it is a float
    if hint in (int, float, str, bool) and type(value) is not hint:
        raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


def build_dataclass(cls, data, prefix: str = ""):
    """``cls(**data)`` with every key and type checked; errors name the dotted key.

    Args:
        cls: a dataclass (nested dataclass fields are built recursively).
        data: a mapping (or an instance of ``cls``, returned as it is).
        prefix: the dotted path of ``data`` in the whole config, for messages (``"method"``).

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or ``cls``'s own validation failing.
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown config key(s) {[where + k for k in unknown]}; known: {sorted(hints)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{prefix or 'config'}: {err}") from err


