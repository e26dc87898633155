"""Config files checked the way Snakemake reads them, with errors naming file:line:column.

Snakemake reads a config file as JSON, then as YAML, and reports a failure as "Config file
is not valid JSON or YAML" without the file, line or column. ``check_config_file`` reads
it the same way and names all three. The Snakefile checks the embedded ``config.yaml``
with it before ``configfile:``; ``nfws run`` (``nfws.cli``) checks the ``--configfile``
files, which Snakemake reads before the Snakefile. ``Section`` is the base of the typed
config sections the stages read.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar

import yaml

#: the checkout's config.yaml: the one source of every default
REPO_CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


class ConfigFileError(ValueError):
    """A config file that is not a JSON or YAML mapping; the message names file:line:column."""


@dataclass(frozen=True)
class Section:
    """Base of the typed config sections: a frozen dataclass whose fields are the keys.

    Fields have no defaults (``config.yaml`` and its schema are the one source).
    ``from_dict`` takes a section with exactly these keys (or an instance, returned as it
    is), ``pick`` these keys out of a larger one; both name the section and the missing or unknown keys, turn lists into
    tuples for ``tuple`` fields and call ``check``, which refuses a bad value by naming
    ``section.key`` (``bad``). ``SECTION`` is the section's name in the config.
    """

    SECTION: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, cfg: Mapping | None, section: str | None = None):
        return cls._build(cfg, section or cls.SECTION, exact=True)

    @classmethod
    def pick(cls, cfg: Mapping | None, section: str | None = None):
        return cls._build(cfg, section or cls.SECTION, exact=False)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def _build(cls, cfg, section: str, exact: bool):
        if isinstance(cfg, cls):
            return cfg
        if not isinstance(cfg, Mapping):
            raise ValueError(f"config {section}: must be a mapping of keys, got {cfg!r}")
        names = cls.keys()
        missing = [k for k in names if k not in cfg]
        unknown = sorted(set(cfg) - set(names)) if exact else []
        if missing or unknown:
            raise ValueError(f"config {section}: missing keys {missing}, unknown keys {unknown}")
        tuples = {f.name for f in fields(cls) if f.type is tuple or str(f.type).startswith("tuple")}
        out = cls(**{k: tuple(cfg[k]) if k in tuples and cfg[k] is not None else cfg[k]
                     for k in names})
        out.check(section)
        return out

    def check(self, section: str) -> None:
        """Refuse bad values (override; ``bad`` names the key)."""

    def bad(self, section: str, key: str, why: str):
        raise ValueError(f"config {section}.{key}: {why}, got {getattr(self, key)!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def repo_section(*path: str) -> dict:
    """One section of the checkout's ``config.yaml`` (e.g. ``repo_section("nerf", "fit")``),
    for benchmarks and tests that run a stage with the pipeline's defaults."""
    section = yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))
    for key in path:
        section = section[key]
    return section


def check_config_file(path) -> None:
    """Raise ConfigFileError unless ``path`` holds a JSON or YAML mapping.

    A syntax error is reported at its line and column: the JSON error for ``.json``
    files, the YAML error otherwise (JSON is tried first, as Snakemake does).
    """
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigFileError(f"{path}: cannot read the config file ({err})") from err
    try:
        is_mapping, where = isinstance(json.loads(text), dict), "1:1"
    except json.JSONDecodeError as json_error:
        node = _yaml_root(path, text, json_error if path.suffix.lower() == ".json" else None)
        is_mapping = isinstance(node, yaml.MappingNode)
        where = _place(node.start_mark) if node is not None else "1:1"
    if not is_mapping:
        raise ConfigFileError(f"{path}:{where}: the top level must be a mapping of config keys")


def _yaml_root(path: Path, text: str, json_error: json.JSONDecodeError | None):
    """The YAML document's root node (None when empty); a syntax error names its place."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        if json_error is not None:
            raise ConfigFileError(f"{path}:{json_error.lineno}:{json_error.colno}: not valid "
                                  f"JSON: {json_error.msg}") from None
        context = f" ({err.context} at {_place(err.context_mark)})" \
            if err.context and err.context_mark else ""
        raise ConfigFileError(f"{path}:{_place(err.problem_mark or err.context_mark)}: not "
                              f"valid YAML: {err.problem}{context}") from None


def _place(mark) -> str:
    """``line:column`` (1-based) of a YAML mark."""
    return f"{mark.line + 1}:{mark.column + 1}"
