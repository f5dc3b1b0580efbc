"""Where ConvScope keeps things on this computer, and the variables that move them.

    settings   $CONVSCOPE_SETTINGS, else the platform's config folder / ConvScope.conf
               (Linux: ~/.config/ConvScope/, macOS: ~/Library/Application Support/ConvScope/,
               Windows: %LOCALAPPDATA%\\ConvScope\\)
    downloads  $CONVSCOPE_CACHE, else the platform's cache folder / convscope
               (Linux: $XDG_CACHE_HOME or ~/.cache, macOS: ~/Library/Caches,
               Windows: %LOCALAPPDATA%\\convscope\\Cache)
    own data   $CONVSCOPE_DATA, else the platform's data folder / convscope
               (Linux: $XDG_DATA_HOME or ~/.local/share)

Folders come from platformdirs. A cache left by an older version in ~/.cache/convscope on
macOS or Windows is used where it is, never lost.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

OLD_CACHE = Path.home() / ".cache" / "convscope"  # before platform folders (all systems)


def settings_file() -> Path:
    if os.environ.get("CONVSCOPE_SETTINGS"):
        return Path(os.environ["CONVSCOPE_SETTINGS"])
    return platformdirs.user_config_path("ConvScope", appauthor=False) / "ConvScope.conf"


def cache_dir() -> Path:
    if os.environ.get("CONVSCOPE_CACHE"):
        return Path(os.environ["CONVSCOPE_CACHE"])
    new = platformdirs.user_cache_path("convscope", appauthor=False)
    if not sys.platform.startswith("linux") and not new.exists() and OLD_CACHE.is_dir():
        return OLD_CACHE
    return new


def data_dir() -> Path:
    if os.environ.get("CONVSCOPE_DATA"):
        return Path(os.environ["CONVSCOPE_DATA"])
    return platformdirs.user_data_path("convscope", appauthor=False)
