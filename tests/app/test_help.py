"""Help in the app: every panel explains itself from a "?" in its corner."""
from __future__ import annotations

from PyQt5.QtWidgets import QWidget

from convscope.visualizer import help as panel_help


def test_the_corner_button_stays_in_the_corner_and_names_its_panel(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    shown = []
    button = panel_help.attach(widget, "Loss", shown.append)
    widget.resize(300, 200)
    widget.show()
    qtbot.waitUntil(lambda: button.x() + button.width() >= 296)
    widget.resize(500, 200)
    qtbot.waitUntil(lambda: button.x() + button.width() >= 496)
    button.click()
    assert shown == ["Loss"]


def test_the_texts_explain_the_hard_parts(qtbot):
    assert "winner" in panel_help.PANELS["Feature maps"]
    assert "guessing" in panel_help.PANELS["Prediction"]
    for preset in ("seed", "deep", "lenet"):
        assert f"<b>{preset}</b>" in panel_help.PRESETS
    dialog = panel_help.HelpDialog()
    qtbot.addWidget(dialog)
    dialog.show_text("Timeline", panel_help.text_of("Timeline"))
    assert "best state" in dialog.text.toPlainText() and dialog.isVisible()
