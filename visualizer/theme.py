"""Dark and light themes: the Qt palette, pyqtgraph colours and the colour maps panels share.

A panel that wants to follow theme changes implements ``apply_theme(theme: Theme)``; the main
window calls it once when the panel is added and again on every change. ``stylesheet`` is the
main window's style sheet for a theme.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PyQt5.QtGui import QColor, QPalette
from PyQt5.QtWidgets import QApplication, QGraphicsItem

# antialiased curves cost 5-100x more to draw (noisy per-step losses are the worst case)
pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


def cached(item):
    """Keep ``item`` (a label, title or axis that rarely changes) as a pixmap between its
    changes: a repaint of its view then blits it instead of running its Python paint code
    (measured: about 8% off the live view's repaint cost). Returns the item."""
    item.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
    return item


@dataclass(frozen=True)
class Theme:
    name: str
    window: str  # widget background
    base: str  # input fields
    plot_bg: str  # pyqtgraph canvas background
    text: str
    muted: str  # secondary text, grid lines
    accent: str  # the Train button, highlights
    good: str  # the true class, test curves
    bad: str  # a wrong prediction, errors
    curve: str  # raw / train curves
    curve2: str  # smoothed / second series
    bar: str  # neutral bars
    diverging: str  # pyqtgraph colour map name, centred on zero
    gray: tuple  # (low, high) colours for the input digit

    @property
    def dark(self) -> bool:
        return QColor(self.window).lightness() < 128


DARK = Theme("dark", window="#1f2126", base="#15171b", plot_bg="#15171b", text="#e6e8eb",
             muted="#8b929c", accent="#4c9aff", good="#3ddc84", bad="#ff6b6b",
             curve="#5a6b85", curve2="#7cc4ff", bar="#7b8494", diverging="CET-D4",
             gray=("#000000", "#ffffff"))
LIGHT = Theme("light", window="#f4f5f7", base="#ffffff", plot_bg="#ffffff", text="#1d2228",
              muted="#6b7480", accent="#1a66d2", good="#138a43", bad="#d6336c",
              curve="#a9b8cc", curve2="#1a66d2", bar="#8d96a3", diverging="CET-D1A",
              gray=("#000000", "#ffffff"))
THEMES = {"dark": DARK, "light": LIGHT}

_system_palette: QPalette | None = None


def system_theme() -> Theme:
    """The theme closest to the system's palette (as it was before any theme was applied)."""
    global _system_palette
    app = QApplication.instance()
    if _system_palette is None and app is not None:
        _system_palette = QPalette(app.palette())
    if _system_palette is None:
        return LIGHT
    return DARK if _system_palette.color(QPalette.Window).lightness() < 128 else LIGHT


def resolve(choice: str) -> Theme:
    """"dark", "light" or "system" -> a Theme."""
    return THEMES.get(choice) or system_theme()


def apply_palette(app: QApplication, theme: Theme) -> None:
    """Fusion style with the theme's palette (Fusion honours palettes on every platform)."""
    system_theme()  # remember the system palette before replacing it
    app.setStyle("Fusion")
    p = QPalette()
    c = QColor
    disabled = c(theme.muted)
    roles = {
        QPalette.Window: c(theme.window), QPalette.WindowText: c(theme.text),
        QPalette.Base: c(theme.base), QPalette.AlternateBase: c(theme.window),
        QPalette.ToolTipBase: c(theme.base), QPalette.ToolTipText: c(theme.text),
        QPalette.Text: c(theme.text), QPalette.Button: c(theme.window),
        QPalette.ButtonText: c(theme.text), QPalette.BrightText: c(theme.bad),
        QPalette.Highlight: c(theme.accent), QPalette.HighlightedText: c("#ffffff"),
        QPalette.Link: c(theme.accent), QPalette.PlaceholderText: disabled,
        QPalette.Light: c(theme.window).lighter(130), QPalette.Midlight: c(theme.window),
        QPalette.Mid: c(theme.muted), QPalette.Dark: c(theme.window).darker(150),
        QPalette.Shadow: c("#000000"),
    }
    for role, color in roles.items():
        p.setColor(role, color)
    for role in (QPalette.Text, QPalette.WindowText, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, disabled)
    app.setPalette(p)


def lut(name: str, n: int = 256) -> np.ndarray:
    """(n, 4) uint8 lookup table of a pyqtgraph colour map."""
    return pg.colormap.get(name).getLookupTable(0.0, 1.0, n, alpha=True)


def colormap(name: str) -> pg.ColorMap:
    return pg.colormap.get(name)


def gray_map(theme: Theme) -> pg.ColorMap:
    return pg.ColorMap([0.0, 1.0], [QColor(theme.gray[0]), QColor(theme.gray[1])])


def stylesheet(theme: Theme) -> str:
    """The main window's style sheet: the Train button, banner, docks and group boxes."""
    warn = "#c98a00" if not theme.dark else "#f0b429"
    return f"""
    QPushButton#train {{ background: {theme.accent}; color: white; font-weight: 600;
        border: none; border-radius: 4px; padding: 6px; font-size: 11pt; }}
    QPushButton#train:hover {{ background: {theme.curve2}; }}
    QPushButton#train[running="true"] {{ background: {warn}; color: #1b1b1b; }}
    QLabel#hover {{ color: {theme.muted}; font-size: 8pt; }}
    QLabel#pending {{ color: {warn}; font-weight: 600; }}
    QLabel#headline {{ color: {theme.text}; }}
    QFrame#banner {{ background: {theme.bad}; }}
    QFrame#banner QLabel {{ color: white; font-weight: 600; }}
    QDockWidget {{ font-weight: 600; }}
    QDockWidget::title {{ padding: 3px 6px; background: {theme.window}; }}
    QGroupBox {{ font-weight: 600; border: 1px solid {theme.muted}; border-radius: 4px;
        margin-top: 8px; padding-top: 4px; }}
    QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 3px; }}
    QGroupBox QLabel, QGroupBox QCheckBox {{ font-weight: normal; }}
    QStatusBar QLabel {{ color: {theme.text}; }}
    """
