"""Packaging: the explicit ``packages`` list in pyproject.toml matches the folders, and a wheel works.

An editable install maps whole folders, so a package missing from ``[tool.setuptools].packages``
goes unnoticed in development and only disappears from wheels; these tests catch it here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS["package-dir"]
PACKAGES: list[str] = SETUPTOOLS["packages"]
SKIP_DIRS = {"__pycache__", "build", "dist"}


def _folder_of(package: str) -> Path | None:
    """The source folder of ``package`` per ``package-dir`` (the longest mapped prefix wins)."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in PACKAGE_DIR:
            return ROOT / PACKAGE_DIR[prefix] / Path(*parts[cut:])
    if "" in PACKAGE_DIR:
        return ROOT / PACKAGE_DIR[""] / Path(*parts)
    return None


def _packages_on_disk() -> dict[str, Path]:
    """Every folder with an ``__init__.py`` under a mapped root, by the package name it maps to."""
    found: dict[str, Path] = {}
    # Longest mapping first, so a folder mapped on its own is named by its own mapping.
    for prefix, folder in sorted(PACKAGE_DIR.items(), key=lambda item: -len(item[0])):
        base = ROOT / folder
        for init in sorted(base.rglob("__init__.py")):
            relative = init.parent.relative_to(base)
            if SKIP_DIRS & set(relative.parts) or any(p.endswith(".egg-info") for p in relative.parts):
                continue
            name = ".".join([p for p in [prefix] if p] + list(relative.parts))
            found.setdefault(name, init.parent)
    return found


def _source_files() -> dict[str, Path]:
    """Every ``.py`` file of every package folder on disk, by its path inside a wheel."""
    files: dict[str, Path] = {}
    for package, folder in _packages_on_disk().items():
        for path in sorted(folder.glob("*.py")):
            files["/".join([*package.split("."), path.name])] = path
    return files


def test_package_dir_maps_the_three_source_folders() -> None:
    assert PACKAGE_DIR == {"openatc": "core", "openatc.frontends": "frontends", "openatc.plugins": "plugins"}


def test_every_package_folder_is_listed() -> None:
    missing = {name: str(path.relative_to(ROOT)) for name, path in _packages_on_disk().items() if name not in PACKAGES}
    assert not missing, (
        f"folders with an __init__.py are missing from [tool.setuptools].packages in pyproject.toml: {missing}"
    )


def test_every_listed_package_has_a_folder() -> None:
    assert len(set(PACKAGES)) == len(PACKAGES), "duplicate entries in [tool.setuptools].packages"
    for package in PACKAGES:
        folder = _folder_of(package)
        assert folder is not None, f"package {package!r} is under no [tool.setuptools.package-dir] mapping"
        assert (folder / "__init__.py").is_file(), f"package {package!r} has no {folder.relative_to(ROOT)}/__init__.py"


def test_no_module_folder_without_init() -> None:
    """A folder of modules without ``__init__.py`` would be an implicit namespace package: never shipped."""
    orphans = []
    for folder in PACKAGE_DIR.values():
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.parent.relative_to(ROOT)
            if SKIP_DIRS & set(relative.parts):
                continue
            if not (path.parent / "__init__.py").is_file():
                orphans.append(str(path.relative_to(ROOT)))
    assert not orphans, f"modules in folders without __init__.py (not packaged): {sorted(orphans)}"


def test_builtin_plugins_live_in_listed_packages() -> None:
    from openatc.manager import BUILTIN_PLUGINS

    for module in BUILTIN_PLUGINS:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        package = module if spec.submodule_search_locations else module.rpartition(".")[0]
        assert package in PACKAGES, f"built-in plugin {module} is in {package}, which is not packaged"


# -- the wheel -------------------------------------------------------------------------------------
def _wheel_build_unavailable() -> str:
    for module in ("pip", "setuptools", "wheel"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: cannot build a wheel offline (--no-build-isolation)"
    return ""


def _copy_project(dest: Path) -> Path:
    """What a wheel is built from: pyproject.toml, the README and the mapped folders (no build debris).

    Building from a copy keeps ``build/`` and ``*.egg-info`` out of the working tree, where other
    runs may be building at the same time.
    """
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.py", "setup.cfg"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for folder in sorted(set(PACKAGE_DIR.values())):
        shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _wheel_build_unavailable()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("wheel")
    project = _copy_project(root / "project")
    out = root / "dist"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-w",
            str(out),
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    [built] = out.glob("openatc-*.whl")
    return built


def test_wheel_contains_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "openatc/__init__.py",
        "openatc/__main__.py",
        "openatc/testing.py",
        "openatc/frontends/__init__.py",
        "openatc/frontends/onnx/__init__.py",
        "openatc/plugins/__init__.py",
        "openatc/plugins/backends/cpu.py",
        "openatc/plugins/backends/reference.py",
        "openatc/plugins/passes/__init__.py",
    ):
        assert required in names, required
    missing = sorted(set(_source_files()) - names)
    assert not missing, f"modules missing from the wheel: {missing}"
    stray = sorted(n for n in names if n.endswith(".py") and not n.startswith("openatc/"))
    assert not stray, f"files outside the openatc package in the wheel: {stray}"


def test_wheel_metadata_and_console_script(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    version = PYPROJECT["project"]["version"]
    dist_info = f"openatc-{version}.dist-info"
    metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert "Name: openatc" in metadata and f"Version: {version}" in metadata
    entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert "[console_scripts]\nopenatc = openatc.cli:main" in entry_points


def test_installed_wheel_imports_and_loads_its_builtins(wheel: Path, tmp_path: Path) -> None:
    """The wheel, installed alone in a target folder, provides every built-in plugin."""
    target = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    script = textwrap.dedent(
        """
        import json, sys
        import openatc
        from openatc.manager import BUILTIN_PLUGINS
        pm = openatc.get_plugin_manager(load_entrypoints=False)
        print(json.dumps({
            "file": openatc.__file__,
            "modules": {m: sys.modules[m].__file__ for m in BUILTIN_PLUGINS},
            "backends": sorted(pm.backends()),
            "frontends": sorted(pm.frontends()),
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENATC_")}
    env["PYTHONPATH"] = str(target)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False, env=env, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr
    info = json.loads(run.stdout)
    # The target folder comes before the editable install's finder, so everything is the wheel's.
    assert Path(info["file"]).is_relative_to(target)
    for module, path in info["modules"].items():
        assert Path(path).is_relative_to(target), module
    assert {"cpu", "reference"} <= set(info["backends"])
    assert "5" in info["frontends"]
