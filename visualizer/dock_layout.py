"""Where the main window's views go: docks around the central tabs, and their default sizes.

``DockLayout.add`` puts a view in a dock (left/right/top/bottom, optionally tabbed with another
dock, listed in View > Panels) or in a tab beside the feature maps. The first layout gives the
controls their natural height and shares the rest among the big views. The Loss and Accuracy
docks keep one readable height whatever the tab (at least CURVES_MIN pixels, so the layout
never jumps between tabs); on narrow windows the side columns give up width to the tabs.
"""
from __future__ import annotations

from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtWidgets import QApplication, QDockWidget, QFrame, QMainWindow, QScrollArea

CURVES_MIN = 180  # the Loss and Accuracy docks never get lower than this: axes stay readable
CURVES_SHARE = 0.26  # of the window's height, by default
AREAS = {"left": Qt.LeftDockWidgetArea, "right": Qt.RightDockWidgetArea,
         "top": Qt.TopDockWidgetArea, "bottom": Qt.BottomDockWidgetArea}


def scrolled(widget, horizontal: bool = True) -> QScrollArea:
    """``widget`` in a frameless scroll area: a large view never forces the window to grow."""
    scroll = QScrollArea()
    scroll.setWidget(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    if not horizontal:
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    return scroll


class DockLayout:
    def __init__(self, window: QMainWindow, tabs, panels_menu, on_shown):
        """``on_shown()`` is called when a dock comes into view (its view repaints)."""
        self.window, self.tabs, self.panels_menu = window, tabs, panels_menu
        self._on_shown = on_shown
        window.setDockOptions(QMainWindow.AllowTabbedDocks | QMainWindow.AllowNestedDocks
                              | QMainWindow.AnimatedDocks)
        window.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
        window.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)
        self.docks: dict[str, QDockWidget] = {}
        self.default_state = None  # the window's state after the first layout

    def add(self, name: str, widget, area: str, tab_with: str | None = None,
            visible: bool = True) -> QDockWidget | None:
        """A dock in ``area`` or, with area "tab", a tab. Returns the dock (None for a tab)."""
        if area == "tab":
            self.tabs.addTab(scrolled(widget), name)
            return None
        if area not in AREAS:
            raise ValueError(f"unknown area {area!r}: use tab, {', '.join(AREAS)}")
        w = self.window
        dock = QDockWidget(name, w)
        dock.setObjectName("dock_" + name.lower().replace(" ", "_"))
        dock.setWidget(widget)
        if name in ("Loss", "Accuracy"):
            widget.setMinimumHeight(CURVES_MIN - 30)  # the dock's title bar is the rest
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        if tab_with in self.docks:
            w.tabifyDockWidget(self.docks[tab_with], dock)
        else:
            w.addDockWidget(AREAS[area], dock)
        dock.setVisible(visible)
        dock.visibilityChanged.connect(lambda shown: shown and self._on_shown())
        self.docks[name] = dock
        self.panels_menu.addAction(dock.toggleViewAction())
        return dock

    def restore(self) -> None:
        """Back to the default layout, every dock shown."""
        if self.default_state:
            self.window.restoreState(self.default_state)
        for dock in self.docks.values():
            dock.setVisible(True)

    def shown(self) -> None:
        """The window is shown: the first time, lay the docks out (again once settled)."""
        if self.default_state is None:
            self.default_state = b""
            self._size_docks()
            QTimer.singleShot(0, self._first_layout)

    def _first_layout(self) -> None:
        self._size_docks()
        self.default_state = self.window.saveState()

    def _central_need(self) -> int:
        """The width the widest tab page needs without a horizontal scroll bar."""
        pages = [self.tabs.widget(i) for i in range(self.tabs.count())]
        widths = [(p.widget() if hasattr(p, "widget") else p).minimumSizeHint().width()
                  for p in pages]
        return max(widths, default=0) + 36  # the scroll area's frame, vertical bar, dock margins

    def _size_docks(self) -> None:
        """Default layout: the controls at their natural height, the big views share the rest."""
        w, docks = self.window, self.docks
        width = w.width()
        left = [docks["Controls"], docks["Probe digit"]]
        right = [docks[n] for n in ("Prediction", "Filters", "Class templates")]
        hint = w.controls.sizeHint()
        side = [max(hint.width() + 14, int(width * 0.19)),
                max(300 if width < 1500 else 320, int(width * 0.24))]
        short = self._central_need() - (width - sum(side))
        floors = [w.controls.minimumSizeHint().width() + 14, 250]
        for i in (0, 1):  # a narrow window: the side columns give the tabs their width
            give = max(0, min(short, side[i] - floors[i]))
            side[i] -= give
            short -= give
        w.resizeDocks(left[:1], side[:1], Qt.Horizontal)
        w.resizeDocks(right[:1], side[1:], Qt.Horizontal)
        left_h = sum(d.height() for d in left)
        top = min(hint.height() + 30, left_h - 180)
        w.resizeDocks(left, [top, left_h - top], Qt.Vertical)
        right_h = sum(d.height() for d in right)
        w.resizeDocks(right, [int(right_h * f) for f in (0.32, 0.26, 0.42)], Qt.Vertical)
        w.resizeDocks([docks["Loss"]], [max(CURVES_MIN, int(w.height() * CURVES_SHARE))],
                      Qt.Vertical)


def default_size() -> tuple[int, int]:
    """Most of the screen, up to 1600 x 1000 (1280 x 800 without a usable screen size)."""
    screen = QApplication.primaryScreen()
    if screen is None:
        return 1280, 800
    free = screen.availableGeometry()
    if free.width() < 1024 or free.height() < 700:
        return 1280, 800
    return min(1600, int(free.width() * 0.92)), min(1000, int(free.height() * 0.92))
