"""Architecture invariant: one import name (``convscope``): no module is ever loaded under its
folder's name (the sources' imports are checked in tests/engine/test_engine_imports.py)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("engine", "visualizer", "cli", "bench", "main")  # importable only as convscope.X


@pytest.mark.slow
def test_no_module_is_loaded_under_its_folder_name():
    """Imported from the checkout's top folder (where ``engine`` would also be importable),
    every module of every sub-package loads once, as convscope.X."""
    code = ("import sys, pkgutil, importlib, convscope\n"
            "for m in pkgutil.walk_packages(convscope.__path__, 'convscope.'):\n"
            "    if not m.name.endswith('__main__'):\n"
            "        importlib.import_module(m.name)\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FOLDERS!r})\n"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
