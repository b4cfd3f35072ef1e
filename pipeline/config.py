"""Layered, typed configs: dataclass defaults <- YAML file <- dotted `key=value` overrides.

Unknown keys and wrong types are errors that name the key and suggest the closest known one. The resolved config
is written to every run directory with secret-looking values redacted, so any run can be repeated.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
import warnings
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.errors import ConfigError

T = TypeVar("T")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
SECRET_KEY = re.compile(r"(api_key|apikey|token|secret|password)$", re.I)


def check_ranges(obj: Any, **ranges: tuple[float | None, float | None]) -> None:
    """Raise a ValueError naming the field and its valid range for the first value of `obj` outside it.
    `name=(low, high)`, both inclusive, None for no bound; a None value (an unset option) passes."""
    for name, (low, high) in ranges.items():
        value = getattr(obj, name)
        if value is None or ((low is None or value >= low) and (high is None or value <= high)):
            continue
        if high is None:
            want = f">= {low:g}"
        elif low is None:
            want = f"<= {high:g}"
        else:
            want = f"between {low:g} and {high:g}"
        raise ValueError(f"{name}={value!r} is out of range: it must be {want}")


def project_path(ref: str | Path) -> Path:
    """A path as given if it exists from here, else relative to the project root (configs name repo files)."""
    p = Path(ref)
    return p if p.exists() or p.is_absolute() else CONFIG_DIR.parent / p


def require_paths(what: str, paths: dict[str, str | Path], resolve=project_path) -> None:
    """Stop before a run starts when a path a config names is not there: `paths` maps the config key (as the user
    writes it, e.g. `data.manifests[1]`) to the path; `resolve` is how the stage itself will find it (the cold
    start also looks under the project root, SFT and PTST read from the current directory only)."""
    where = "read from here or from the project root" if resolve is project_path else "read from the current directory"
    for key, ref in paths.items():
        if not resolve(ref).exists():
            raise ConfigError(f"{key}: {what} {ref} not found ({where})")


def find_config(ref: str | Path) -> Path:
    """A config file path, or a name like `coldstart/demo` looked up under configs/."""
    p = Path(ref)
    if p.is_file():
        return p
    named = CONFIG_DIR / f"{ref}.yaml"
    if named.is_file():
        return named
    known = sorted(str(q.relative_to(CONFIG_DIR).with_suffix("")) for q in CONFIG_DIR.rglob("*.yaml"))
    hint = difflib.get_close_matches(str(ref), known, n=1)
    raise ConfigError(
        f"config '{ref}' not found (not a file, not under configs/)"
        + (f"; did you mean '{hint[0]}'?" if hint else f"; known: {known}")
    )


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key.sub=value")
    key, raw = item.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{item}': empty key part")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for item in overrides:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
            node = nxt
        node[path[-1]] = value
    return data


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: cannot be null")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a section (mapping), got {type(value).__name__}")
        return build(tp, value, prefix=key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (arg, *_) = typing.get_args(tp) or (Any,)
        return [_coerce(v, arg, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        _, vt = typing.get_args(tp) or (Any, Any)
        return {k: _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def build(cls: type[T], data: dict, prefix: str = "") -> T:
    """Instantiate dataclass `cls` from a plain dict, checking every key and type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    data = _renamed(cls, data, prefix)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            raise ConfigError(
                f"unknown config key '{prefix}{key}'"
                + (f"; did you mean '{prefix}{close[0]}'?" if close else f"; known keys here: {sorted(fields)}")
            )
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{prefix or cls.__name__}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"{prefix}{e}" if prefix else str(e)) from None


def _renamed(cls: type, data: dict, prefix: str) -> dict:
    """Keys a release renamed keep working for one more release, with a warning that says the new spelling.
    A dataclass lists them as `RENAMED = {old: (new, value -> new value)}`."""
    renamed = getattr(cls, "RENAMED", {})
    if not renamed or not renamed.keys() & data.keys():
        return data
    data = dict(data)
    for old, (new, convert) in renamed.items():
        if old in data:
            value = convert(data.pop(old))
            warnings.warn(
                f"config key '{prefix}{old}' is deprecated and goes away in the next release; "
                f"write '{prefix}{new}: {value}' instead",
                FutureWarning,
                stacklevel=4,
            )
            data.setdefault(new, value)
    return data


def load_config(cls: type[T], ref: str | Path | None = None, overrides: list[str] | None = None) -> T:
    data: dict = {}
    if ref is not None:
        path = find_config(ref)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
    return build(cls, apply_overrides(data, list(overrides or [])))


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def redact(obj: Any) -> Any:
    """Copy with every value under a secret-looking key (api_key, token, …) replaced by '***'.
    Keys ending in `_env` hold the NAME of an environment variable and are kept."""
    if isinstance(obj, dict):
        return {k: ("***" if SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(redact(obj), sort_keys=False, allow_unicode=True)
