"""``python -m nfws.gpucheck.wheels [--dir .whl] [--check]``: wheels the GPU machine lacks.

The GPU machine (Python 3.12, no network) has torch, torch-geometric, pandas, pyarrow,
scikit-learn, scikit-image, tqdm, matplotlib and what those require (:data:`DEVICE_HAS`).
:func:`required_wheels` pins everything else the check needs there: pyproject.toml's pins
where it has them, :data:`PINS` (the versions this checkout's environment resolved)
otherwise. :func:`fetch` downloads them for CPython 3.12 on manylinux x86_64 into an ignored
folder; :func:`check` reads each wheel's ``Requires-Dist`` (extras skipped, markers evaluated
for Python 3.12 on Linux x86_64) and names every requirement that neither a wheel there nor
:data:`DEVICE_HAS` satisfies. See docs/gpucheck.md for the install line on the device.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parents[2]

#: packages the check needs on the device, pinned in pyproject.toml
FROM_PYPROJECT = ("snakemake", "snakemake-executor-plugin-slurm", "nerfacc", "zarr", "pyyaml",
                  "jsonschema", "pytest")
#: what those require (and the device lacks), at the versions this checkout resolved;
#: packaging is shipped too: snakemake wants packaging<26, the device's may be newer
PINS = {
    "annotated-types": "0.8.0", "argparse-dataclass": "2.0.0", "conda-inject": "1.3.2",
    "configargparse": "1.9.0", "connection-pool": "0.0.3", "docutils": "0.22.4",
    "donfig": "0.8.1.post1", "dpath": "2.2.0", "fastjsonschema": "2.22.3", "gitdb": "4.0.12",
    "gitpython": "3.2.1", "google-crc32c": "1.9.0", "greenlet": "3.5.6",
    "humanfriendly": "10.0", "immutables": "0.21", "iniconfig": "2.3.1",
    "jsonschema-specifications": "2025.9.1", "jupyter-core": "5.9.1",
    "markdown-it-py": "4.3.0", "mdurl": "0.1.2", "nbformat": "5.11.1", "numcodecs": "0.16.6",
    "packaging": "25.0", "platformdirs": "4.14.9", "pluggy": "1.7.0", "pulp": "3.3.2",
    "pydantic": "2.14.4", "pydantic-core": "2.50.5", "pygments": "2.21.0",
    "referencing": "0.37.0", "rich": "15.0.0", "rpds-py": "2026.9.1",
    "smart-open": "7.7.1", "smmap": "5.0.3", "snakemake-executor-plugin-slurm-jobstep": "0.6.1",
    "snakemake-interface-common": "1.23.0", "snakemake-interface-executor-plugins": "9.4.0",
    "snakemake-interface-logger-plugins": "2.1.0", "snakemake-interface-report-plugins": "1.3.0",
    "snakemake-interface-scheduler-plugins": "2.0.2",
    "snakemake-interface-storage-plugins": "4.4.1", "sqlalchemy": "2.0.58", "sqlmodel": "0.0.37",
    "tabulate": "0.10.0", "tenacity": "9.2.1", "throttler": "1.2.3", "traitlets": "5.16.1",
    "typing-inspection": "0.4.5", "wrapt": "2.5.2", "yte": "1.9.4",
}
#: on the device already: its listed packages and what they require
DEVICE_HAS = frozenset(canonicalize_name(n) for n in (
    "torch", "filelock", "typing-extensions", "sympy", "mpmath", "networkx", "jinja2",
    "markupsafe", "fsspec", "setuptools", "triton",
    "torch-geometric", "aiohttp", "aiohappyeyeballs", "aiosignal", "attrs", "frozenlist",
    "multidict", "propcache", "yarl", "idna", "numpy", "psutil", "pyparsing", "requests",
    "charset-normalizer", "urllib3", "certifi", "tqdm", "xxhash",
    "pandas", "python-dateutil", "six", "tzdata", "pyarrow",
    "scikit-learn", "scipy", "joblib", "threadpoolctl",
    "scikit-image", "pillow", "imageio", "tifffile", "lazy-loader",
    "matplotlib", "contourpy", "cycler", "fonttools", "kiwisolver",
))
#: the device machine, as pip download and marker evaluation see it
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
MARKER_ENV = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.0",
              "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
              "os_name": "posix", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "extra": ""}


def pyproject_pins(path: Path = REPO / "pyproject.toml") -> dict[str, str]:
    """``{canonical name: version}`` of every ``NAME==VERSION`` in pyproject.toml."""
    data = tomllib.loads(path.read_text())
    reqs = list(data["project"]["dependencies"])
    for extra in data["project"].get("optional-dependencies", {}).values():
        reqs += extra
    pins = {}
    for text in reqs:
        req = Requirement(text)
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            pins[canonicalize_name(req.name)] = exact[0]
    return pins


def required_wheels() -> dict[str, str]:
    """``{name: version}`` of every wheel the device needs."""
    pins = pyproject_pins()
    missing = [n for n in FROM_PYPROJECT if canonicalize_name(n) not in pins]
    if missing:
        raise KeyError(f"pyproject.toml: no NAME==VERSION pin for {missing}")
    return {**{canonicalize_name(n): pins[canonicalize_name(n)] for n in FROM_PYPROJECT}, **PINS}


def fetch(folder: Path) -> list[Path]:
    """Download every wheel of :func:`required_wheels` not yet in ``folder``; a package
    published only as source (connection-pool) is built into a wheel here instead."""
    folder.mkdir(parents=True, exist_ok=True)
    have = {(canonicalize_name(n), str(v)) for n, v in (_name_version(p) for p in _wheels(folder))}
    for name, version in sorted(required_wheels().items()):
        if (name, version) in have:
            continue
        pin = f"{name}=={version}"
        download = ["download", "--no-deps", "--only-binary=:all:", "--python-version", PYTHON,
                    "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)],
                    "-d", str(folder), pin]
        print("pip " + " ".join(download), flush=True)
        if _pip(download).returncode != 0:
            print(f"{pin}: no wheel published; building one from its source", flush=True)
            if _pip(["wheel", "--no-deps", "-w", str(folder), pin]).returncode != 0:
                raise RuntimeError(f"{pin}: neither a wheel to download nor one built from source")
    return _wheels(folder)


def check(folder: Path) -> list[str]:
    """Problems with the wheels in ``folder``: requirements that nothing satisfies, wheels
    not built for CPython 3.12 on x86_64 Linux, required wheels absent. [] when complete."""
    wheels = _wheels(folder)
    have = dict(_name_version(p) for p in wheels)
    problems = [f"{name}=={version}: no wheel in {folder}"
                for name, version in required_wheels().items()
                if str(have.get(name)) != version]
    for path in wheels:
        if not _fits_device(path):
            problems.append(f"{path.name}: not for CPython {PYTHON} on manylinux x86_64")
        for req in requirements(path):
            name = canonicalize_name(req.name)
            if name in DEVICE_HAS:
                continue
            if name not in have:
                problems.append(f"{path.name} requires {req}: neither in {folder} nor on the device")
            elif not req.specifier.contains(have[name], prereleases=True):
                problems.append(f"{path.name} requires {req}: {folder} has {name} {have[name]}")
    return problems


def requirements(wheel: Path) -> list[Requirement]:
    """The wheel's ``Requires-Dist`` lines that apply on the device (no extras)."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        lines = zf.read(meta).decode().splitlines()
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in lines
            if line.startswith("Requires-Dist:")]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(MARKER_ENV)]


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "-q", *args])


def _wheels(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.whl"))


def _name_version(path: Path):
    name, version, _, _ = parse_wheel_filename(path.name)
    return canonicalize_name(name), version


def _fits_device(path: Path) -> bool:
    tags = parse_wheel_filename(path.name)[3]
    py = PYTHON.replace(".", "")
    return any(t.interpreter in ("py3", f"cp{py}") and
               t.abi in ("none", f"cp{py}", "abi3") and
               (t.platform == "any" or t.platform in PLATFORMS or
                re.fullmatch(r"manylinux_2_(\d+)_x86_64", t.platform) and
                int(t.platform.split("_")[2]) <= 28)
               for t in tags)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m nfws.gpucheck.wheels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=REPO / ".whl", help="wheel folder (default: .whl)")
    parser.add_argument("--check", action="store_true", help="only check the folder, download nothing")
    args = parser.parse_args(argv)
    wheels = _wheels(args.dir) if args.check else fetch(args.dir)
    problems = check(args.dir)
    size = sum(p.stat().st_size for p in wheels)
    print(f"{len(wheels)} wheels, {size / 2**20:.1f} MiB in {args.dir}")
    if problems:
        raise SystemExit("incomplete:\n  " + "\n  ".join(problems))
    print("complete: every requirement is a wheel there or on the device")


if __name__ == "__main__":
    main(sys.argv[1:])
