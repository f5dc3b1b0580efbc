"""Architecture invariants, read from the sources (so also without Qt installed): every import
of the project goes through the one name ``convscope``, and engine/ never imports Qt,
pyqtgraph or the visualizer."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "engine"
FOLDERS = ("engine", "visualizer", "cli", "bench", "main")  # importable only as convscope.X
GUI = ("PyQt5", "PyQt6", "PySide2", "PySide6", "pyqtgraph", "convscope.visualizer")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((a.name, 0) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def _sources():
    skip = {".venv", ".git", "build", "dist"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


@pytest.mark.slow
def test_every_import_of_the_project_goes_through_convscope():
    for path in _sources():
        for name, level in _imports(path):
            assert level == 0, f"{path.relative_to(ROOT)}: relative import of {name!r}"
            assert name.split(".")[0] not in FOLDERS, \
                f"{path.relative_to(ROOT)} imports {name!r}: write convscope.{name}"


@pytest.mark.slow
def test_engine_sources_import_no_gui():
    for path in ENGINE.rglob("*.py"):
        for name, _ in _imports(path):
            assert not name.startswith(GUI), f"{path.relative_to(ROOT)} imports {name}"


@pytest.mark.slow
def test_importing_engine_loads_no_gui_module():
    code = ("import sys, pkgutil, importlib, convscope.engine as engine\n"
            "for m in pkgutil.walk_packages(engine.__path__, 'convscope.engine.'):\n"
            "    importlib.import_module(m.name)\n"
            f"bad = [m for m in sys.modules if m.startswith({GUI!r})]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_source_file_stays_short_and_the_learners_path_readable():
    """Rooms a newcomer can take in: no non-test source file over 400 lines, and the network
    a learner reads (the notes in code, layers, model, optimizer, trainer) within 1,200."""
    long = {str(p.relative_to(ROOT)): n for p in _sources() if "tests" not in p.parts
            and (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"over 400 lines: {long}"
    reading = [ENGINE / "net" / f"{name}.py" for name in
               ("notes", "layers", "model", "optim", "train")]
    assert sum(len(p.read_text().splitlines()) for p in reading) <= 1200


def test_the_codemap_names_every_module():
    """ARCHITECTURE.md's codemap matches the folders: every source module is named there."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    folders = ("engine", "visualizer", "cli", "bench", "scripts")
    unnamed = [str(p.relative_to(ROOT)) for p in _sources() if p.parts[len(ROOT.parts)] in folders
               and p.name != "__init__.py" and p.name not in text]
    assert not unnamed, f"ARCHITECTURE.md does not name {unnamed}"
