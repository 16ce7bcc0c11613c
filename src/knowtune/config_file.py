"""Reading a config file: YAML, `key.sub=value` overrides, validation with one-line errors, and writing back.

Every error names the file, the key and what would be valid (config.py holds the schema).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from .config import Config, ConfigError


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply `key.sub=value` overrides, validate.

    Relative paths in sources and runs_dir are taken from the working
    directory, as shell users expect, and stored absolute so a run directory
    can be reused from anywhere.
    """
    return validate(load_raw(path, overrides), where=str(path))


def load_raw(path: str | Path, overrides: list[str] = ()) -> dict:
    """The YAML config as a plain mapping, overrides applied, not validated yet."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    for item in overrides:
        apply_override(raw, item, where=str(path))
    return raw


def validate(raw: dict, where: str = "config") -> Config:
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_explain(err, where)) from None
    cfg.runs_dir = cfg.runs_dir.absolute()
    for source in cfg.sources:
        if isinstance(source.path, Path):
            source.path = source.path.absolute()
        elif Path(source.path).exists():  # an hf_dataset folder; anything else is a hub id
            source.path = str(Path(source.path).absolute())
    return cfg


def apply_override(raw: dict, item: str, where: str = "config") -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key.sub=value")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, part, key)]
            continue
        if part not in node or node[part] is None:
            node[part] = {}
        node = node[part]
    last = parts[-1]
    parsed = yaml.safe_load(value) if value.strip() else ""
    if isinstance(node, list):
        node[_list_index(node, last, key)] = parsed
    else:
        node[last] = parsed


def _list_index(node: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {key!r}: {part!r} is not an index of a list of {len(node)}")
    return int(part)


def _explain(err: ValidationError, where: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            key = str(e["loc"][-1])
            valid = _valid_keys(e["loc"][:-1])
            near = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"valid keys: {', '.join(sorted(valid))}"
            lines.append(f"{where}: unknown key '{loc}' ({hint})")
        elif e["type"] == "missing":
            lines.append(f"{where}: missing key '{loc}'")
        else:
            lines.append(f"{where}: {loc}: {e['msg']} (got {e.get('input')!r})")
    return "; ".join(lines)


def _valid_keys(loc: tuple) -> list[str]:
    """Field names of the model found at `loc` (list indices and union tags walked through)."""
    model: Any = Config
    for part in loc:
        model = _unwrap(model, part)
        if model is None:
            return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _unwrap(tp: Any, part: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return field.annotation if field else None
    origin = get_origin(tp)
    if origin is list and isinstance(part, int):
        return get_args(tp)[0]
    if origin is Annotated:
        return _unwrap(get_args(tp)[0], part)
    if origin is Union:
        for member in get_args(tp):
            if member is type(None):
                continue
            if isinstance(part, int) or str(part) not in getattr(member, "model_fields", {}):
                # a discriminated union puts the tag in the location
                tag = getattr(member, "model_fields", {}).get("type")
                if tag is not None and part in get_args(tag.annotation):
                    return member
                continue
            return _unwrap(member, part)
        return None
    return None


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
