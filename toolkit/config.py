"""Typed configuration: dataclasses with working defaults, optionally overridden by a TOML/YAML/JSON file.

One loader for every stage so a config file means the same thing everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import JepaEdgeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


class ConfigError(JepaEdgeError):
    """A configuration file or override that does not fit the dataclass it targets."""


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError as exc:
                raise ConfigError(f"{path}: YAML configs need PyYAML (pip install pyyaml); use TOML") from exc
            return yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}") from exc
    raise ConfigError(f"{path}: unsupported config format {suffix!r} (use .toml, .json or .yaml)")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return from_dict(annotation, value, where)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build `cls` from a mapping, refusing unknown keys so typos do not pass silently."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready dict of a dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))


def load_config(cls: type[T], path: str | Path | None = None, base: T | None = None, **overrides: Any) -> T:
    """Defaults of `cls` (or `base`), then the file (if given), then keyword overrides that are not None."""
    data: dict[str, Any] = dataclasses.asdict(base) if base is not None else {}
    if path is not None:
        data.update(_read_mapping(Path(path)))
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, data, where=str(path) if path else cls.__name__)
