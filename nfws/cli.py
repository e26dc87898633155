"""The ``nfws`` command: Snakemake with its config files checked first, and the check alone.

Snakemake parses ``--configfile`` files before it reads the Snakefile and reports a broken
one as "Config file is not valid JSON or YAML", naming neither the file nor the place.
``nfws run ARGS...`` checks every file named after ``--configfile``/``--configfiles``
(``check_config_file``: ``file:line:column``), then runs Snakemake in this process with
exactly ``ARGS``. ``nfws check-config FILE...`` runs the check alone.
"""
from __future__ import annotations

import sys
from pathlib import Path

from nfws.config_files import ConfigFileError, check_config_file

USAGE = """usage: nfws run [SNAKEMAKE ARGUMENTS...]   check every --configfile, then run snakemake
       nfws check-config CONFIG_FILE...     check config files only (exit status 1 if any is broken)"""
CONFIGFILE_OPTIONS = ("--configfile", "--configfiles")


def configfile_arguments(argv: list[str]) -> list[str]:
    """The words Snakemake reads as config files: each ``--configfile[s]=F``, and every word
    after ``--configfile[s]`` up to the next option (argparse's ``nargs="+"``)."""
    files, taking = [], False
    for word in argv:
        if word == "--":
            break
        if word.startswith("-"):
            option, _, value = word.partition("=")
            taking = option in CONFIGFILE_OPTIONS and not value
            if option in CONFIGFILE_OPTIONS and value:
                files.append(value)
        elif taking:
            files.append(word)
    return files


def config_file_errors(paths: list[str]) -> list[str]:
    """One message per path that is missing or not a JSON/YAML mapping."""
    errors = []
    for path in paths:
        if not Path(path).is_file():
            errors.append(f"{path}: no such config file (Snakemake reads every word after "
                          "--configfile up to the next option as a config file: put targets "
                          "before --configfile, or end the files with --)")
            continue
        try:
            check_config_file(path)
        except ConfigFileError as err:
            errors.append(str(err))
    return errors


def _report(errors: list[str]) -> int:
    for message in errors:
        print(message, file=sys.stderr)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    """``nfws run ...`` or ``nfws check-config ...``; the exit status of either."""
    argv = sys.argv[1:] if argv is None else argv
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "check-config" and rest:
        return _report(config_file_errors(rest))
    if command != "run":
        print(USAGE, file=sys.stderr)
        return 2
    if _report(config_file_errors(configfile_arguments(rest))):
        return 1
    from snakemake.cli import main as snakemake_main
    snakemake_main(rest)  # exits with Snakemake's status
    return 0


if __name__ == "__main__":
    sys.exit(main())
