"""Config files checked the way Snakemake reads them, with errors naming file:line:column.

Snakemake reads a config file as JSON, then as YAML, and reports a failure as "Config file
is not valid JSON or YAML" without the file, line or column. ``check_config_file`` reads
it the same way and names all three. The Snakefile checks the embedded ``config.yaml``
with it before ``configfile:``; ``nfws run`` (``nfws.cli``) checks the ``--configfile``
files, which Snakemake reads before the Snakefile. ``checked_section`` checks the keys of
one config section as the stages read it.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml


class ConfigFileError(ValueError):
    """A config file that is not a JSON or YAML mapping; the message names file:line:column."""


def checked_section(cfg: dict, keys, section: str, optional: dict | None = None) -> dict:
    """``cfg`` if it has exactly ``keys`` (plus any of ``optional``, whose values fill in
    when absent); missing or unknown keys name the config section."""
    optional = optional or {}
    cfg = dict(cfg or {})
    missing = sorted(set(keys) - set(cfg))
    unknown = sorted(set(cfg) - set(keys) - set(optional))
    if missing or unknown:
        raise ValueError(f"config {section}: missing keys {missing}, unknown keys {unknown}")
    return {**optional, **cfg}


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
