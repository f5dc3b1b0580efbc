"""Running a command in-process, as the CLI tests do."""
from __future__ import annotations

import json

from convscope import cli


def call(capsys, *argv):
    """(exit status, stdout, stderr) of an in-process run."""
    code = cli.run([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str) -> dict:
    lines = out.splitlines()
    assert len(lines) == 1, f"--json must print only the JSON line, got {lines}"
    return json.loads(lines[-1])
