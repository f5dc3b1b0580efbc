"""The installed shape of ConvScope: one import name, package data found through the package,
the version, ``python -m convscope``, honest version floors, and one line (never a Qt abort)
when there is no display."""
from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import convscope
from convscope.bench import readme

ROOT = Path(__file__).resolve().parents[2]


def _run(args, cwd, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM",
                                                             "WAYLAND_DISPLAY")}
    return subprocess.run([sys.executable, "-m", "convscope", *args], cwd=cwd, text=True,
                          capture_output=True, env={**base, **env}, timeout=120)


@pytest.mark.slow
def test_python_m_convscope_prints_its_version_from_any_folder(tmp_path):
    done = _run(["--version"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"convscope {convscope.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", convscope.__version__)


def test_package_data_is_found_through_the_package():
    assets = resources.files("convscope") / "assets"
    for name in ("mnist-first10k-images-idx3-ubyte.gz", "mnist-first10k-labels-idx1-ubyte.gz",
                 "convscope.png", "convscope.svg", "convscope.desktop"):
        assert (assets / name).is_file(), name
    entry = configparser.ConfigParser(interpolation=None)
    entry.read_string((assets / "convscope.desktop").read_text())
    desktop = entry["Desktop Entry"]
    assert desktop["Exec"] == "convscope" and desktop["Icon"] == "convscope"
    assert desktop["Type"] == "Application"


@pytest.mark.slow
def test_without_display_the_app_says_so_in_one_line(tmp_path):
    done = _run([], tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "DISPLAY is not set" in lines[0] and "QT_QPA_PLATFORM=offscreen" in lines[0]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 displays are Linux's")
def test_an_unreachable_x_server_is_one_line_not_a_qt_abort(tmp_path):
    display = next(n for n in range(97, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    done = _run([], tmp_path, DISPLAY=f":{display}")
    assert done.returncode == 1, done.stderr  # Qt itself would abort: 134
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert ("cannot reach the X server" in lines[0]
            or "system libraries are missing" in lines[0]), lines[0]


def test_writing_the_bench_readme_needs_a_checkout(tmp_path, monkeypatch, capsys):
    readme.require_checkout()  # this copy is a checkout: no complaint
    monkeypatch.setattr(readme, "README", tmp_path / "convscope" / "bench" / "README.md")
    with pytest.raises(SystemExit) as stop:
        readme.require_checkout()
    assert stop.value.code == 1
    assert "installed copy" in capsys.readouterr().err


def _floors(lines) -> dict[str, str]:
    """{name: version} of requirement strings "name>=version" / "name==version"."""
    pins = {}
    for line in lines:
        m = re.search(r"([A-Za-z][A-Za-z0-9_.-]*)\s*(?:>=|==)\s*([0-9][\w.]*)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _list(text: str, header: str) -> list[str]:
    """The quoted strings of the TOML array that starts with ``header`` (e.g. "test = [")."""
    body = text[text.index(header) + len(header):]
    return re.findall(r'"([^"]+)"', body[:body.index("]")])


def test_ci_floor_lane_installs_exactly_the_declared_floors():
    text = (ROOT / "pyproject.toml").read_text()
    declared = _floors(_list(text, "\ndependencies = [") + _list(text, "\ntest = ["))
    declared.pop("ruff")  # the floor lane runs the tests, not the linter
    assert {"numpy", "pyqt5", "pyqtgraph", "pillow", "pytest", "pytest-qt"} <= set(declared)
    pinned = _floors(line for line in (ROOT / ".ci" / "floors.txt").read_text().splitlines()
                     if line.strip() and not line.startswith("#"))
    assert pinned == declared


def test_the_window_icon_is_the_shipped_one(qapp):
    from convscope.visualizer.app import make_app

    app = make_app()
    icon = app.windowIcon()
    assert not icon.isNull()
    image = icon.pixmap(64, 64).toImage()
    assert image.width() == 64 and image.pixelColor(32, 32).isValid()
    assert app.desktopFileName() == "convscope"
