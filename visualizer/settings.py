"""What the app remembers between launches, through QSettings.

Window geometry and dock layout, theme, last architecture/dataset/seed, last hyperparameters,
recent model files and the last folder used. Every value is checked when read: a missing,
corrupt or out-of-range value (or an unreadable settings file) gives the default, never an
exception. The settings are an INI file on every system, in the platform's config folder
(``convscope.engine.files.places``); ``CONVSCOPE_SETTINGS=/path/file.ini`` keeps them in that
file instead (tests and CI use it). On macOS and Windows, settings an older version kept in
the system's own store are copied into the file once.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from PyQt5.QtCore import QByteArray, QSettings

from convscope.engine.data.folders import CONVERSIONS
from convscope.engine.files import places
from convscope.engine.files.atomic import atomic_path
from convscope.engine.files.guard import open_regular, special_file
from convscope.engine.net.model import PRESETS

RECENT_MAX = 8
MAX_SETTINGS_BYTES = 1 << 20
TYPED_OK = ("@ByteArray(", "@Invalid()", "@@")  # Qt's typed INI values that are ever read
THEMES = ("system", "dark", "light")
POOLS = ("max", "avg", "min")


def _positive_finite(v):
    return math.isfinite(v) and 0 < v <= 100


# key -> (kind, default, check); kind is int, float, bool, str or "opt_int" (None = default)
RUN = {
    "preset": (str, "seed", lambda v: v in PRESETS),
    "filters": ("opt_int", None, lambda v: v is None or 1 <= v <= 64),
    "pool": (str, "max", lambda v: v in POOLS),
    "relu": ("opt_bool", None, lambda v: True),
    "dataset": (str, "mini", lambda v: 0 < len(v) < 4096),
    "seed": (int, 0, lambda v: 0 <= v < 2 ** 32),
    "convert": (str, "mnist", lambda v: v in CONVERSIONS),  # a folder of pictures' conversion
}
HYPER = {
    "lr": (float, 0.005, _positive_finite),
    "batch_size": (int, 1, lambda v: 1 <= v <= 60000),
    "momentum": (float, 0.0, lambda v: 0 <= v < 1),
}


def _convert(value, kind):
    """A QSettings value (often a str from an INI file) -> ``kind``; raises on nonsense."""
    if kind in ("opt_int", "opt_bool"):
        if value in (None, "", "default"):
            return None
        kind = int if kind == "opt_int" else bool
    if kind is bool:
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(value)
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(str(value).strip())
    if kind is float:
        return float(str(value).strip())
    if not isinstance(value, str):
        raise ValueError(value)
    return value


def _copy_native(target: QSettings) -> None:
    """Settings of older versions, kept in the system's own store (the registry on Windows, a
    plist on macOS), copied into the INI file once. On Linux that store was this same file."""
    if sys.platform.startswith("linux"):
        return
    native = QSettings("ConvScope", "ConvScope")
    for key in native.allKeys():
        target.setValue(key, native.value(key))
    target.sync()


class MemorySettings:
    """What the app remembers while it runs, when its settings file cannot be used."""

    def __init__(self):
        self.values: dict = {}

    def value(self, key: str, default=None):
        return self.values.get(key, default)

    def setValue(self, key: str, value) -> None:  # noqa: N802 (QSettings' name)
        self.values[key] = value

    def sync(self) -> None:
        pass


def _warn(text: str) -> None:
    print(f"convscope: {text}", file=sys.stderr, flush=True)


def _safe_text(text: str) -> str:
    """The INI text without lines Qt must never parse: ``@Variant(...)`` (a serialized Qt
    object: a crafted one claiming 2^31 items aborts the app) and any other typed value
    except ``@ByteArray`` (window layout), ``@Invalid()`` and escaped text (``@@``)."""
    kept = []
    for line in text.splitlines():
        _, eq, value = line.partition("=")
        value = value.strip()
        typed = eq and value.startswith("@") and not value.startswith(TYPED_OK)
        if not typed and "@Variant(" not in line:
            kept.append(line)
    return "\n".join(kept) + ("\n" if kept else "")


def open_settings(path: Path):
    """QSettings on ``path`` once it is safe for Qt to read, else MemorySettings (with a
    warning): the file must be a regular file (a FIFO would hang the launch) of at most
    MAX_SETTINGS_BYTES, and values Qt would deserialize are removed from it first."""
    kind = special_file(path)
    if kind is not None:
        _warn(f"{path} is {kind}, not a settings file; settings are not remembered")
        return MemorySettings()
    if path.is_file():
        try:
            with open_regular(path, OSError, "settings file", MAX_SETTINGS_BYTES) as f:
                text = f.read().decode("utf-8", errors="replace")
            safe = _safe_text(text)
            if safe != text:
                _warn(f"{path}: values of a kind ConvScope never writes were removed")
                with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
                    f.write(safe)
        except OSError as e:
            _warn(f"{e}; settings are not remembered")
            return MemorySettings()
    return QSettings(str(path), QSettings.IniFormat)


class Settings:
    """Typed, validated access to the app's QSettings."""

    def __init__(self, qsettings: QSettings | None = None):
        if qsettings is None:
            path = places.settings_file()
            fresh = not path.exists()
            qsettings = open_settings(path)
            if (fresh and isinstance(qsettings, QSettings)
                    and not os.environ.get("CONVSCOPE_SETTINGS")):
                _copy_native(qsettings)
        self.qs = qsettings

    def read(self, key: str, kind, default, check=lambda v: True):
        """The stored value converted to ``kind`` if it passes ``check``, else ``default``."""
        value = self.qs.value(key)
        if value is None:
            return default
        try:
            value = _convert(value, kind)
            return value if check(value) else default
        except (TypeError, ValueError, OverflowError):
            return default

    def _group(self, prefix: str, spec: dict) -> dict:
        return {k: self.read(f"{prefix}/{k}", kind, default, check)
                for k, (kind, default, check) in spec.items()}

    def _write_group(self, prefix: str, spec: dict, values: dict) -> None:
        for k, v in values.items():
            if k in spec:
                self.qs.setValue(f"{prefix}/{k}", "" if v is None else str(v))

    # ---- run settings and hyperparameters ---------------------------------------------
    def run_settings(self) -> dict:
        """{preset, filters, pool, relu, dataset, seed, convert} (keyword arguments of
        RunSettings)."""
        return self._group("run", RUN)

    def set_run_settings(self, **values) -> None:
        self._write_group("run", RUN, values)

    def hyperparameters(self) -> dict:
        """{lr, batch_size, momentum} (keyword arguments of Hyper)."""
        return self._group("hyper", HYPER)

    def set_hyperparameters(self, **values) -> None:
        self._write_group("hyper", HYPER, values)

    # ---- appearance --------------------------------------------------------------------
    def theme(self) -> str:
        return self.read("view/theme", str, "system", lambda v: v in THEMES)

    def set_theme(self, name: str) -> None:
        self.qs.setValue("view/theme", name)

    def save_window(self, window) -> None:
        """Geometry and dock/toolbar layout of a QMainWindow."""
        self.qs.setValue("window/geometry", window.saveGeometry())
        self.qs.setValue("window/state", window.saveState())

    def restore_window(self, window) -> bool:
        """Restore what ``save_window`` stored; False (window unchanged) when nothing valid."""
        geometry, state = self.qs.value("window/geometry"), self.qs.value("window/state")
        ok = isinstance(geometry, QByteArray) and window.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            ok = window.restoreState(state) and ok
        return bool(ok)

    # ---- files -------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        """Most recent first, at most RECENT_MAX, only files that still exist."""
        value = self.qs.value("files/recent")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return []
        paths = [p for p in value if isinstance(p, str) and p and os.path.isfile(p)]
        return list(dict.fromkeys(paths))[:RECENT_MAX]

    def _set_recent(self, paths: list[str]) -> None:
        # one path as plain text: Qt writes a one-item list as a @Variant, never read back
        self.qs.setValue("files/recent", paths[0] if len(paths) == 1 else paths or "")

    def add_recent_file(self, path: str) -> list[str]:
        path = os.path.abspath(path)
        paths = [path] + [p for p in self.recent_files() if p != path]
        self._set_recent(paths[:RECENT_MAX])
        self.qs.setValue("files/last_dir", os.path.dirname(path))
        return paths[:RECENT_MAX]

    def clear_recent_files(self) -> None:
        self._set_recent([])

    def last_dir(self) -> str:
        folder = self.read("files/last_dir", str, "", os.path.isdir)
        return folder or os.path.expanduser("~")

    def set_last_dir(self, folder: str) -> None:
        self.qs.setValue("files/last_dir", folder)

    def sync(self) -> None:
        self.qs.sync()
