"""Architecture invariant: engine/ never imports Qt, pyqtgraph or the visualizer."""
import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "engine"
FORBIDDEN = ("PyQt5", "PyQt6", "PySide2", "PySide6", "pyqtgraph", "visualizer")


def test_engine_sources_import_no_gui():
    for path in ENGINE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_importing_engine_loads_no_gui_module():
    code = ("import sys, engine, pkgutil, importlib\n"
            "for m in pkgutil.iter_modules(engine.__path__):\n"
            "    importlib.import_module('engine.' + m.name)\n"
            f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ENGINE.parent,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
