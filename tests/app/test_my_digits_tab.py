"""The My digits tab: a drawing added from the Draw tab is kept on disk and shown; the gallery
relabels and deletes; "Train on my digits" fine-tunes the live run, whose curves and Timeline
keep the steps, and says how the held-back digits and the test set fared."""
import numpy as np
import pytest

TIMEOUT = 60_000


def test_a_drawing_added_in_the_draw_tab_is_kept_and_shown(qtbot, window, tmp_path):
    tab, draw = window.my_digits, window.draw_panel
    draw.load_test_digit(3)
    qtbot.waitUntil(lambda: draw.digit is not None and draw.probs is not None, timeout=TIMEOUT)
    # the label offered is the network's reading
    assert tab.adder.label_combo.currentIndex() == int(np.argmax(draw.probs))
    tab.adder.label_combo.setCurrentText("7")
    tab.adder.add_button.click()
    files = list((tmp_path / "data" / "my-digits" / "7").glob("*.png"))
    assert len(files) == 1
    assert tab.gallery.count() == 1 and "1 digit" in tab.count_label.text()
    assert np.array_equal(tab.store.load().images[0], draw.digit)
    assert "added" in tab.adder.note.text()


def test_adding_with_an_empty_canvas_says_so(window):
    window.draw_panel.canvas.clear()
    window.my_digits.adder.add_button.click()
    assert window.my_digits.store.count() == 0
    assert "draw a digit first" in window.my_digits.adder.note.text()


def test_the_gallery_filters_relabels_and_deletes(window, mini):
    tab = window.my_digits
    for i in range(6):
        tab.store.add(mini.x_test[i], str(i % 2))
    tab.refresh()
    assert tab.gallery.count() == 6
    tab.filter_combo.setCurrentIndex(tab.filter_combo.findData("1"))
    assert tab.gallery.count() == 3
    tab.gallery.item(0).setSelected(True)
    tab.relabel_combo.setCurrentText("9")
    tab.relabel_button.click()
    assert tab.gallery.count() == 2 and len(tab.store.load("9").labels) == 1
    tab.filter_combo.setCurrentIndex(0)
    tab.gallery.selectAll()
    tab.delete_button.click()
    assert tab.gallery.count() == 0 and tab.store.count() == 0


@pytest.mark.slow
def test_training_on_my_digits_fine_tunes_the_run_and_keeps_the_record(qtbot, window, mini,
                                                                     run_steps):
    run_steps(window, 200)
    tab = window.my_digits
    for img, label in zip(mini.x_train[:150], mini.y_train[:150], strict=True):
        tab.store.add(img[:, ::-1], str(int(label)))  # a style the dataset never shows
    tab.refresh()
    points = window.loss_panel.point_count()
    step = window.latest.step
    tab.epochs_spin.setValue(3)
    with qtbot.waitSignal(window.job_done, timeout=TIMEOUT) as done:
        tab.train_button.click()
    report = done.args[0]
    assert report.epochs == 3 and report.steps > 0 and report.n_held > 0
    assert report.samples_before == 200 * 8
    assert "Held back" in tab.result_label.text() and "→" in tab.result_label.text()
    qtbot.waitUntil(lambda: window.latest.step == step + report.steps, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: window.loss_panel.point_count() > points, timeout=TIMEOUT)
    assert window.timeline_panel.timeline.state_at(window.latest.step)  # a moment to go back to
    lines = [item for item in window.loss_panel.plot.items
             if getattr(item, "label", None) is not None and "my digits" in
             item.label.toPlainText()]
    assert len(lines) == 1 and lines[0].value() == report.samples_before
    assert tab.train_button.isEnabled()
    run_steps(window, 5)  # the run goes on with its own data
