"""An external plugin found through the ``openatc`` entry-point group, end to end.

The distribution in ``tests/data/plugin_dist`` (``openatc-echo-backend``) is built and installed
with pip into a temporary target folder, offline; openatc then runs in subprocesses with
``PYTHONPATH`` pointing there, so the test environment itself is never changed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import openatc
from openatc.manager import BUILTIN_PLUGINS, OpenATCPluginManager
from openatc.testing import assert_numerically_equal, make_inputs, make_tiny_onnx, read_manifest

pytest_plugins = ["openatc.testing"]

DIST_SOURCE = Path(__file__).resolve().parents[1] / "data" / "plugin_dist"
DIST_NAME = "openatc-echo-backend"
DIST_VERSION = "0.3.1"
TIMEOUT = 180


def _offline_build_unavailable() -> str:
    """Why pip cannot build the distribution here without a network (empty when it can)."""
    if importlib.util.find_spec("pip") is None:
        return "pip is not installed in this environment"
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools (the plugin's build backend) is not installed; --no-build-isolation needs it"
    major = int(importlib.metadata.version("setuptools").split(".")[0])
    if major < 68:
        return f"setuptools {major} is older than the plugin's build requirement (>=68)"
    return ""


pytestmark = pytest.mark.skipif(bool(_offline_build_unavailable()), reason=_offline_build_unavailable())


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENATC_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def _run(args: list[str], site: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=_env(site, **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _openatc(args: list[str], site: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return _run(["-m", "openatc", *args], site, cwd, **env)


def _openatc_many(
    commands: list[list[str]], site: Path, cwd: Path, **env: str
) -> list[subprocess.CompletedProcess[str]]:
    """Several independent ``openatc`` runs at once (each pays the interpreter's start-up)."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda args: _openatc(args, site, cwd, **env), commands))


def _describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


@pytest.fixture(scope="module")
def echo_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The echo distribution installed into a temporary target folder (built from a copy).

    pip builds a local folder in place (``build/``, ``*.egg-info``); building a copy keeps the
    source tree clean and lets several test runs proceed side by side.
    """
    root = tmp_path_factory.mktemp("echo_dist")
    source = shutil.copytree(DIST_SOURCE, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = root / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--no-input",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env={**os.environ, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull},
    )
    assert proc.returncode == 0, f"pip could not build and install {DIST_SOURCE} offline:\n{_describe(proc)}"
    return site


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the tiny model and an ``out/`` folder for the .om files."""
    path = tmp_path_factory.mktemp("echo_work")
    make_tiny_onnx(path)
    (path / "out").mkdir()
    return path


@pytest.fixture(scope="module")
def echo_om(echo_site: Path, workdir: Path) -> Path:
    """The tiny model built by ``python -m openatc ... --soc_version=EchoNPU``."""
    proc = _openatc(
        ["--model=tiny.onnx", "--framework=5", "--output=out/tiny_echo", "--soc_version=EchoNPU"],
        echo_site,
        workdir,
    )
    assert proc.returncode == 0, _describe(proc)
    assert "openatc run success" in proc.stdout
    return workdir / "out" / "tiny_echo.om"


def test_install_stays_in_the_target_folder(echo_site: Path) -> None:
    assert (echo_site / "openatc_echo_backend.py").is_file()
    dist_info = echo_site / f"openatc_echo_backend-{DIST_VERSION}.dist-info"
    assert "[openatc]\necho = openatc_echo_backend" in (dist_info / "entry_points.txt").read_text()
    with pytest.raises(importlib.metadata.PackageNotFoundError):  # this process's environment is untouched
        importlib.metadata.distribution(DIST_NAME)


def test_plugins_command_lists_echo_with_its_distribution(echo_site: Path, tmp_path: Path) -> None:
    proc = _openatc(["plugins"], echo_site, tmp_path)
    assert proc.returncode == 0, _describe(proc)
    plugin_lines = [line.split() for line in proc.stdout.splitlines() if line.strip().startswith("echo ")]
    assert [DIST_NAME, DIST_VERSION] in [fields[1:3] for fields in plugin_lines], proc.stdout
    backends = proc.stdout.split("Backends (--soc_version):")[1].split("Passes")[0]
    assert any(line.split()[:2] == ["echo", "EchoNPU"] for line in backends.splitlines() if line.strip())
    for builtin in BUILTIN_PLUGINS:
        assert builtin in proc.stdout


def test_plugin_subcommand_runs(echo_site: Path, tmp_path: Path) -> None:
    """Hook family 6: the plugin's ``openatc_register_commands`` adds ``openatc echo-info``."""
    proc, help_text = _openatc_many([["echo-info"], ["--help"]], echo_site, tmp_path)
    assert proc.returncode == 0, _describe(proc)
    assert proc.stdout.strip() == f"{DIST_NAME} {DIST_VERSION}: backend 'echo' serves --soc_version=EchoNPU"
    assert help_text.returncode == 0, _describe(help_text)
    assert "echo-info" in help_text.stdout


def test_plugin_subcommand_crash_is_reported_as_inner_error(echo_site: Path, tmp_path: Path) -> None:
    proc = _openatc(["echo-info", "--fail"], echo_site, tmp_path)
    assert proc.returncode == 1, _describe(proc)
    assert "openatc run failed" in proc.stdout
    assert "E19999" in proc.stdout and "echo-info was asked to fail" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_build_for_echonpu_uses_the_echo_backend(echo_om: Path) -> None:
    manifest = read_manifest(echo_om)
    assert manifest["backend"]["name"] == "echo"
    assert manifest["soc_version"] == "EchoNPU"
    assert manifest["producer"][DIST_NAME] == DIST_VERSION  # Backend.versions land in the manifest
    gear = manifest["gears"][0]
    assert gear["payload_section"] == "gear0/payload"
    assert set(gear["weights"]) == {"W1", "W2"}  # the executor really got stubs plus weight arrays


def test_manifest_records_the_backend_plugin(echo_om: Path) -> None:
    assert read_manifest(echo_om)["backend"]["plugin"] == "echo"


_RUN_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import openatc

    om, inputs, output = sys.argv[1:4]
    with openatc.Session(om) as session:
        assert session.backend.name == "echo", session.backend.name
        outputs = session.run({"x": np.load(inputs)})
    np.save(output, outputs["y"])
    print("ran on", session.backend.name)
    """
)


def test_echo_session_computes_like_the_cpu_backend(
    echo_site: Path,
    echo_om: Path,
    workdir: Path,
    plugin_manager: OpenATCPluginManager,
    tmp_path: Path,
) -> None:
    feeds = make_inputs(workdir / "tiny.onnx", seed=7)
    np.save(tmp_path / "x.npy", feeds["x"])
    proc = _run(
        ["-c", _RUN_SCRIPT, str(echo_om), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")], echo_site, tmp_path
    )
    assert proc.returncode == 0, _describe(proc)
    assert "ran on echo" in proc.stdout
    echo_y = np.load(tmp_path / "y.npy")

    cpu_om = openatc.build(
        model=str(workdir / "tiny.onnx"),
        framework=5,
        output=str(tmp_path / "tiny_cpu"),
        soc_version="cpu",
        plugin_manager=plugin_manager,
    )
    with openatc.Session(cpu_om, plugin_manager=plugin_manager) as session:
        cpu_y = session.run(feeds)["y"]
    assert echo_y.dtype == cpu_y.dtype == np.float32
    assert_numerically_equal(echo_y, cpu_y, rtol=1e-5, atol=1e-5, name="y")


def test_run_command_loads_the_echo_om(echo_site: Path, echo_om: Path, tmp_path: Path) -> None:
    proc = _openatc(["run", str(echo_om), "--loop", "2", "--output", str(tmp_path / "out")], echo_site, tmp_path)
    assert proc.returncode == 0, _describe(proc)
    assert np.load(tmp_path / "out" / "y.npy").shape == (1, 8)


@pytest.mark.parametrize(
    "env",
    [{"OPENATC_DISABLE_PLUGIN_AUTOLOAD": "1"}, {"OPENATC_BLOCK_PLUGINS": "other,echo"}],
    ids=["disable-autoload", "block-list"],
)
def test_switches_hide_the_plugin(echo_site: Path, workdir: Path, env: dict[str, str]) -> None:
    name = "tiny_hidden_" + next(iter(env)).lower()
    build_args = ["--model=tiny.onnx", "--framework=5", f"--output=out/{name}", "--soc_version=EchoNPU"]
    listing, info, build = _openatc_many([["plugins"], ["echo-info"], build_args], echo_site, workdir, **env)

    assert listing.returncode == 0, _describe(listing)
    assert DIST_NAME not in listing.stdout and "EchoNPU" not in listing.stdout
    assert info.returncode == 2, _describe(info)  # no such command
    assert build.returncode == 1, _describe(build)
    assert "E40001" in build.stdout and "--soc_version=EchoNPU" in build.stdout
    assert "cpu (cpu, plugin openatc.plugins.backends.cpu)" in build.stdout  # the known targets are listed
    assert not (workdir / "out" / f"{name}.om").exists()


def test_om_of_a_missing_backend_fails_to_load(echo_site: Path, echo_om: Path, tmp_path: Path) -> None:
    proc = _openatc(["run", str(echo_om)], echo_site, tmp_path, OPENATC_DISABLE_PLUGIN_AUTOLOAD="1")
    assert proc.returncode == 1, _describe(proc)
    assert "E40003" in proc.stdout and "'echo'" in proc.stdout
