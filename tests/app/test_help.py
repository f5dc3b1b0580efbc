"""Help in the app: every panel explains itself from a "?" in its corner."""
from __future__ import annotations

import pytest
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


def test_a_prediction_near_chance_is_called_guessing(qtbot):
    import numpy as np

    from convscope.visualizer.probs import ProbsPanel, confidence_words

    assert confidence_words(0.13) == "guessing (13%)" and confidence_words(0.87) == "87% sure"
    from convscope.visualizer.theme import LIGHT

    panel = ProbsPanel()
    qtbot.addWidget(panel)
    panel.apply_theme(LIGHT)
    panel.set_classes([str(k) for k in range(10)])
    probs = np.full(10, 0.0966, np.float32)
    probs[6] = 0.13
    panel.set_output(np.log(probs), probs, 6)
    text = panel.headline.text()
    assert "guessing (13%)" in text and "right by chance" in text and "✓" not in text



def test_a_view_of_an_older_step_says_so_and_offers_a_refresh(qtbot):
    from convscope.visualizer.stale import StaleNote

    note = StaleNote("The Inspector shows", "Trace the next step")
    qtbot.addWidget(note)
    note.set_shown(88_638, 0.005)
    note.set_live(88_638, 0.005)
    assert note.isHidden()
    note.set_live(97_823, 0.05)
    assert not note.isHidden()
    assert note.label.text() == ("The Inspector shows step 88,638 (lr 0.005; now 0.05); the run "
                                 "is at step 97,823 now.")
    with qtbot.waitSignal(note.refresh_requested):
        note.button.click()
    note.set_shown(97_824, 0.05)
    assert note.isHidden()


@pytest.mark.slow
def test_space_and_right_work_while_a_number_box_has_the_focus(qtbot, window):
    from PyQt5.QtCore import Qt
    from PyQt5.QtTest import QTest

    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=5_000)
    spin = window.controls.batch_spin
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=5_000)
    start = window.latest.step
    with qtbot.waitSignal(window.worker.traced, timeout=20_000):
        QTest.keyClick(spin.lineEdit(), Qt.Key_Right)  # one traced sample, not a cursor move
    qtbot.waitUntil(lambda: window.latest.step == start + 1, timeout=20_000)
    with qtbot.waitSignal(window.worker.state_changed, timeout=20_000) as blocker:
        QTest.keyClick(spin.lineEdit(), Qt.Key_Space)
    assert blocker.args == [True]
    window.worker.pause()
    text = window.menus.run_actions[0].shortcut().toString()
    assert text == "Space"


@pytest.mark.slow
def test_every_panel_has_its_help_in_its_corner_and_in_the_menu(qtbot, window):
    from convscope.visualizer.help import HelpDialog

    for name in ("Controls", "Feature maps", "Loss", "Timeline", "Draw a digit", "Inspector"):
        widget = window.panels[name]
        buttons = [b for b in widget.findChildren(type(window.controls.dice_button))
                   if b.objectName() == "help_button"]
        assert len(buttons) == 1, name
        buttons[0].click()
        dialog = window.findChild(HelpDialog)
        assert dialog.isVisible() and name in dialog.windowTitle()
    titles = [a.text() for a in window.menuBar().actions()]
    help_menu = window.menuBar().actions()[titles.index("&Help")].menu()
    entries = [a.text() for a in help_menu.actions()]
    assert "What am I looking at?" in entries and "Presets and recipes" in entries


@pytest.mark.slow
def test_the_inspector_says_when_it_shows_an_older_step(qtbot, window):
    note = window.inspector_note
    with qtbot.waitSignal(window.worker.traced, timeout=20_000):
        window.worker.step_samples(1)
    qtbot.waitUntil(lambda: note.shown.get("step") == 1, timeout=20_000)
    assert note.isHidden()
    window.worker.steps(5)
    qtbot.waitUntil(lambda: note.live.get("step") == 6, timeout=20_000)
    assert not note.isHidden() and "step 1;" in note.label.text()
    with qtbot.waitSignal(window.worker.traced, timeout=20_000):
        note.button.click()  # traces the next step
    qtbot.waitUntil(note.isHidden, timeout=20_000)
    assert window.inspector.step_trace.step == 7


@pytest.mark.slow
def test_closing_with_an_unsaved_trained_network_asks_first(qtbot, window, monkeypatch,
                                                           tmp_path):
    from PyQt5.QtWidgets import QMessageBox

    from convscope.visualizer import dialogs

    guard = window.unsaved
    guard.ask = True  # as on a real screen
    window.show()
    assert guard.confirm_close()  # nothing trained yet: no question
    window.worker.steps(5)
    qtbot.waitUntil(lambda: window.latest.step == 5, timeout=20_000)
    assert guard.unsaved_steps() == 5
    answers = [QMessageBox.Cancel, QMessageBox.Save]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
    monkeypatch.setattr(dialogs, "ask_save_path", lambda *a: str(tmp_path / "net.npz"))
    window.close()
    assert window.isVisible()  # Cancel: stays open
    window.close()  # Save: written, then closed
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=20_000)
    assert (tmp_path / "net.npz").stat().st_size > 0 and guard.unsaved_steps() == 0


def test_choosing_a_preset_fills_in_its_recipe_still_editable(qtbot):
    from convscope.engine.recipes import RECIPES
    from convscope.visualizer.controls import ControlsPanel
    from convscope.visualizer.messages import Hyper, RunSettings

    panel = ControlsPanel(RunSettings(), Hyper())
    qtbot.addWidget(panel)
    sent = []
    panel.hyper_changed.connect(sent.append)
    panel.preset_combo.setCurrentIndex(panel.preset_combo.findData("deep"))
    deep = RECIPES["deep"]
    assert sent == []  # shown, applied on Reset
    assert panel.hyper() == Hyper(deep["lr"], deep["batch_size"], deep["momentum"])
    assert panel.filters_spin.value() == deep["filters"]
    assert panel.pending_label.text().startswith("Applies on Reset: preset, filters, ReLU")
    panel.lr_spin.setValue(0.02)  # still editable, and a live box applies at once
    assert panel.hyper().lr == 0.02
    assert sent == [Hyper(0.02, deep["batch_size"], deep["momentum"])]
