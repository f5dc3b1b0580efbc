"""Architecture invariants: one import name (``convscope``) for every module, and an engine
that never imports Qt, pyqtgraph or the visualizer."""
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
    """(module name, relative level) of every import in ``path``."""
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
def test_no_module_is_loaded_under_its_folder_name():
    """Imported from the checkout's top folder (where ``engine`` would also be importable),
    every module of every sub-package loads once, as convscope.X, and the engine loads no GUI
    module."""
    code = ("import sys, pkgutil, importlib, convscope\n"
            "for m in pkgutil.walk_packages(convscope.__path__, 'convscope.'):\n"
            "    if not m.name.endswith('__main__'):\n"
            "        importlib.import_module(m.name)\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FOLDERS!r})\n"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
