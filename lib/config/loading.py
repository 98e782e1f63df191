"""Reading a YAML file into a validated model: one error line naming the file and every problem."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from lib.config.schema import Config
from lib.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"

ModelT = TypeVar("ModelT", bound=BaseModel)


def load_yaml_model(path: Path, model: type[ModelT], what: str) -> ModelT:
    """Read a YAML mapping and validate it into ``model``; every failure is one ConfigError line.

    Raises:
        ConfigError: unreadable or binary file, bad YAML (with its line), or every key/value the schema rejects, on one line.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} {path} is not a text file (not UTF-8 at byte {err.start})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{what} {path} is not valid YAML{where}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {path} must be a mapping at top level")
    try:
        return model(**raw)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}" for e in err.errors()]
        count = f" ({len(problems)} problems)" if len(problems) > 1 else ""
        raise ConfigError(f"{what} {path}{count}: " + "; ".join(problems)) from err


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a YAML configuration (``configs/default.yaml`` by default), as ``load_yaml_model`` does."""
    return load_yaml_model(Path(path) if path else DEFAULT_CONFIG, Config, "config")
