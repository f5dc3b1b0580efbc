"""Is there a screen to open the window on? Asked before the QApplication exists.

Qt aborts the whole process (exit 134) when its platform plugin cannot start: no ``DISPLAY``,
an X server that cannot be reached, or missing xcb libraries. ``check_display()`` asks a child
interpreter to start Qt first and turns its failure into one plain line.
"""
from __future__ import annotations

import os
import subprocess
import sys

HEADLESS = ("work without a window: `convscope train|eval|predict|screenshot ...` "
            "(see `convscope --help`), or set QT_QPA_PLATFORM=offscreen")
XCB_LIBS = ("libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 "
            "libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0")
PROBE = "from PyQt5.QtWidgets import QApplication; QApplication(['convscope-probe'])"


class DisplayError(OSError):
    """No usable display; the message says what is missing and how to work headless."""


def _platform() -> str:
    return os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip()


def check_display(timeout: float = 20.0) -> None:
    """Raise DisplayError unless Qt can start its platform plugin here (Linux/X11 only:
    Windows, macOS and an explicitly chosen platform such as offscreen are taken as given)."""
    platform = _platform()
    if not sys.platform.startswith("linux") or platform not in ("", "xcb"):
        return
    if not platform and os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
        return  # a Wayland session: Qt picks its own plugin
    if not os.environ.get("DISPLAY"):
        raise DisplayError(f"no display to open the window on (DISPLAY is not set); {HEADLESS}")
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "QT_QPA_PLATFORM": "xcb"})
    except subprocess.TimeoutExpired:
        raise DisplayError(f"the X server at DISPLAY={os.environ['DISPLAY']} did not answer "
                           f"within {timeout:.0f} s; {HEADLESS}") from None
    if done.returncode == 0:
        return
    err = done.stderr
    if "could not connect to display" in err or "cannot open display" in err.lower():
        raise DisplayError(f"cannot reach the X server at DISPLAY={os.environ['DISPLAY']}; "
                           f"{HEADLESS}")
    if "xcb" in err:
        raise DisplayError("Qt's X11 plugin cannot start: system libraries are missing "
                           f"(Debian/Ubuntu: sudo apt install {XCB_LIBS}); {HEADLESS}")
    last = next((line for line in reversed(err.splitlines()) if line.strip()), "no message")
    raise DisplayError(f"Qt cannot open a window here ({last.strip()}); {HEADLESS}")
