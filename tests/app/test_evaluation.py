"""Evaluation: metrics, the off-thread evaluation and the evaluation view."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from PyQt5 import QtCore

from convscope.engine.data import datasets
from convscope.engine.data.datasets import DIGIT_NAMES, FASHION_NAMES, load_mini
from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import Trainer, evaluate
from convscope.engine.tools.metrics import confusion_matrix, per_class_accuracy
from convscope.visualizer import evaluation
from convscope.visualizer.evaluation import EvaluationView, evaluate_weights
from convscope.visualizer.messages import RunSettings

SHORT = ["T-shirt", "Trouser", "Pullove", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
         "Ankle"]  # the Fashion-MNIST names where space is tight


@pytest.fixture(scope="module")
def trained(mini):
    """(config, params, dataset) after 150 steps of batch 16 on the embedded digits."""
    data = mini
    config = build_config("seed")
    trainer = Trainer(Model(config, 0), data.x_train, data.y_train, lr=0.01, batch_size=16)
    for _ in range(150):
        trainer.step()
    return config, trainer.get_state()["params"], data


@pytest.fixture
def make_view(widgets):
    """Makes EvaluationViews, deleted for good after the test."""
    def make(**kwargs):
        widgets.append(EvaluationView(**kwargs))
        return widgets[-1]
    return make


def test_confusion_matrix_and_per_class_accuracy():
    c = confusion_matrix([0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0], n=3)
    assert c.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 2]]
    np.testing.assert_allclose(per_class_accuracy(c), [1.0, 0.5, 2 / 3])
    acc = per_class_accuracy(confusion_matrix([0], [0], n=3))
    assert acc[0] == 1.0 and np.isnan(acc[1:]).all()
    with pytest.raises(ValueError):
        confusion_matrix([0, 10], [0, 1])
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0])


@pytest.mark.slow
def test_evaluation_equals_the_engine(trained):
    config, params, data = trained
    model = Model(config)
    model.set_params(params)
    loss, acc, probs = evaluate(model, data.x_test, data.y_test)
    r = evaluate_weights(config, params, data.x_test, data.y_test, step=150)
    assert (r.loss, r.accuracy, r.step) == (loss, acc, 150)
    np.testing.assert_array_equal(r.probs, probs)
    assert 0.5 < acc < 1.0  # it learned something and still makes mistakes
    assert r.confusion.sum() == len(data.y_test) == 1000
    assert np.trace(r.confusion) == round(acc * 1000)
    assert r.confusion.sum(axis=1).tolist() == np.bincount(data.y_test, minlength=10).tolist()
    for k in range(10):
        mine = data.y_test == k
        assert r.per_class[k] == pytest.approx((probs[mine].argmax(1) == k).mean())
    mistakes = r.mistakes()
    assert len(mistakes) == 1000 - np.trace(r.confusion)
    assert (r.predictions[mistakes] != r.labels[mistakes]).all()
    assert (np.diff(r.confidence[mistakes]) <= 0).all()  # most confident first
    cell = r.cell(4, 9)
    assert len(cell) == r.confusion[4, 9]
    assert set(r.labels[cell]) <= {4} and set(r.predictions[cell]) <= {9}


@pytest.mark.slow
def test_view_evaluates_off_the_gui_thread(qtbot, make_view, trained, monkeypatch):
    config, params, data = trained
    threads = []

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", spy)
    view = make_view(weights_source=lambda: (config, params, 150))
    view.set_test_set(data.x_test, data.y_test, data.class_names)
    with qtbot.waitSignal(view.evaluated, timeout=10000) as blocker:
        assert view.evaluate()
        assert view.running and not view.evaluate_button.isEnabled()
    result = blocker.args[0]
    assert threads and threading.main_thread().ident not in threads
    qtbot.waitUntil(lambda: not view.running)
    assert view.evaluate_button.isEnabled()
    assert result.accuracy == evaluate_weights(config, params, data.x_test, data.y_test).accuracy
    assert view.progress_bar.value() == view.progress_bar.maximum() == 1000
    assert f"{100 * result.accuracy:.2f}%" in view.summary_label.text()
    assert view.gallery.count() == min(len(result.mistakes()), evaluation.GALLERY_LIMIT)
    first = view.gallery.item(0).data(QtCore.Qt.UserRole)
    assert first == result.mistakes()[0]


@pytest.mark.slow
def test_cell_click_lists_its_digits_and_a_digit_click_sets_the_probe(qtbot, make_view, trained):
    config, params, data = trained
    view = make_view()
    view.resize(900, 700)
    view.show()
    view.set_test_set(data.x_test, data.y_test)
    view.set_result(evaluate_weights(config, params, data.x_test, data.y_test))
    r = view.result
    true, pred = np.unravel_index(np.argmax(r.confusion - np.diag(np.diag(r.confusion))), (10, 10))
    plot = view.confusion_plot
    scene_pos = plot.plotItem.vb.mapViewToScene(QtCore.QPointF(pred + 0.5, true + 0.5))
    with qtbot.waitSignal(plot.cell_clicked) as blocker:
        qtbot.mouseClick(plot.viewport(), QtCore.Qt.LeftButton,
                         pos=plot.mapFromScene(scene_pos))
    assert blocker.args == [true, pred]
    assert view.cell == (true, pred)
    shown = [view.gallery.item(i).data(QtCore.Qt.UserRole) for i in range(view.gallery.count())]
    assert shown == r.cell(true, pred).tolist() and len(shown) == r.confusion[true, pred]
    item = view.gallery.item(0)
    rect = view.gallery.visualItemRect(item)
    with qtbot.waitSignal(view.probe_requested) as blocker:
        qtbot.mouseClick(view.gallery.viewport(), QtCore.Qt.LeftButton, pos=rect.center())
    index, image, label = blocker.args
    assert index == shown[0] and label == data.y_test[index] == true
    np.testing.assert_array_equal(image, data.x_test[index])
    view.mistakes_button.click()
    assert view.cell is None and view.gallery.count() == len(r.mistakes())


@pytest.mark.slow
def test_view_draws_the_matrix(qtbot, make_view, trained):
    config, params, data = trained
    view = make_view()
    view.resize(900, 700)
    view.show()
    view.set_test_set(data.x_test, data.y_test)
    before = view.confusion_plot.grab().toImage()
    view.set_result(evaluate_weights(config, params, data.x_test, data.y_test))
    after = view.confusion_plot.grab().toImage()
    colours = {after.pixel(x, y) for x in range(0, after.width(), 4)
               for y in range(0, after.height(), 4)}
    assert len(colours) > 20 and after != before


def axis_labels(plot, side: str = "bottom") -> list[str]:
    """The tick strings of one axis of a pyqtgraph plot as drawn at its size (staggering
    newlines dropped)."""
    axis = plot.plotItem.getAxis(side)
    if axis._tickLevels is not None:
        return [text.strip() for _, text in axis._tickLevels[0]]
    lo, hi = axis.range
    size = axis.geometry().width() if side == "bottom" else axis.geometry().height()
    values = [v for _, level in axis.tickValues(min(lo, hi), max(lo, hi), size) for v in level]
    return [t.strip() for t in axis.tickStrings(values, 1.0, 1.0)]


def tooltip_at(plot, true: int, predicted: int) -> str:
    """The confusion plot's tooltip with the mouse over one cell."""
    plot._on_move(plot.plotItem.vb.mapViewToScene(QtCore.QPointF(predicted + 0.5, true + 0.5)))
    return plot.toolTip()


def biggest_mistake(result) -> tuple[int, int]:
    off = result.confusion - np.diag(np.diag(result.confusion))
    return tuple(int(v) for v in np.unravel_index(np.argmax(off), (10, 10)))


@pytest.mark.slow
def test_fashion_names_label_the_matrix_the_gallery_and_the_bars(qtbot, make_view, trained):
    config, params, data = trained
    view = make_view()
    view.resize(900, 700)
    view.show()
    view.set_test_set(data.x_test, data.y_test, FASHION_NAMES)
    plot = view.confusion_plot
    assert axis_labels(plot) == axis_labels(plot, "left") == SHORT
    assert plot.plotItem.getAxis("bottom").upright  # long names stand up under the columns
    view.set_result(evaluate_weights(config, params, data.x_test, data.y_test))
    r = view.result
    true, pred = biggest_mistake(r)
    assert tooltip_at(plot, true, pred).startswith(
        f"true {FASHION_NAMES[true]}, predicted {FASHION_NAMES[pred]}: ")
    assert f"of class {FASHION_NAMES[true]})" in plot.toolTip()
    assert f"mistakes in {len(r.labels):,} images" in view.summary_label.text()  # not digits
    view.show_cell(true, pred)
    assert f"True {FASHION_NAMES[true]}, predicted {FASHION_NAMES[pred]}: " in \
        view.gallery_label.text()
    assert "mistaken images" in view.gallery_label.text()
    item = view.gallery.item(0)
    lines = item.text().split("\n")
    assert lines[:2] == [SHORT[true], f"→ {SHORT[pred]}"]
    room = view.gallery.visualItemRect(item).width()
    assert all(view.gallery.fontMetrics().horizontalAdvance(t) < room for t in lines)
    view.gallery.setCurrentItem(item)  # the bars of the true and the predicted class named
    named = [t for t in axis_labels(view.probability_plot) if t]
    assert named == sorted([SHORT[true], SHORT[pred]], key=SHORT.index)


@pytest.mark.slow
def test_digits_come_back_after_a_reset_to_mnist(qtbot, make_view, trained):
    config, params, data = trained
    view = make_view()
    view.set_test_set(data.x_test, data.y_test, FASHION_NAMES)
    view.set_test_set(data.x_test, data.y_test, DIGIT_NAMES)
    plot = view.confusion_plot
    assert axis_labels(plot) == axis_labels(plot, "left") == DIGIT_NAMES
    assert not plot.plotItem.getAxis("bottom").upright
    view.set_result(evaluate_weights(config, params, data.x_test, data.y_test))
    true, pred = biggest_mistake(view.result)
    assert tooltip_at(plot, true, pred).endswith(f"of the {true}s)\nclick to list them")
    assert f"mistakes in {len(view.result.labels):,} digits" in view.summary_label.text()
    view.show_cell(true, pred)
    assert f"True {true}, predicted {pred}: " in view.gallery_label.text()
    assert view.gallery.item(0).text().startswith(f"{true} → {pred}\n")
    view.gallery.setCurrentRow(0)
    assert axis_labels(view.probability_plot) == DIGIT_NAMES


@pytest.mark.slow
def test_window_names_the_fashion_classes_after_a_reset(qtbot, window, monkeypatch):

    def fashion(spec, *args, **kwargs):  # the embedded digits under Fashion-MNIST's names
        return dataclasses.replace(load_mini(), name="fashion", class_names=FASHION_NAMES)

    monkeypatch.setattr(datasets, "load_dataset", fashion)
    window.reset(RunSettings(dataset="fashion"))
    qtbot.waitUntil(lambda: window.info.class_names == FASHION_NAMES, timeout=20000)
    view = window.file_actions.evaluation
    assert axis_labels(view.confusion_plot) == SHORT
    assert axis_labels(view.per_class_plot, "left") == FASHION_NAMES
    combo = window.draw_panel.saliency_combo
    assert [combo.itemText(i) for i in range(1, 11)] == FASHION_NAMES


@pytest.mark.slow
def test_cancel_leaves_no_thread_and_no_result(qtbot, make_view, trained):
    config, params, data = trained
    view = make_view()
    view.set_test_set(np.repeat(data.x_test, 10, axis=0), np.repeat(data.y_test, 10))
    assert view.start(config, params)
    view.cancel()
    assert not view.running and view.result is None and view.evaluate_button.isEnabled()


@pytest.mark.slow
def test_nothing_to_evaluate_is_reported(qtbot, make_view, trained):
    config, params, data = trained
    view = make_view(weights_source=lambda: None)
    with qtbot.waitSignal(view.error) as blocker:
        view.start(config, params)  # no test split yet
    assert "no test split" in blocker.args[0]
    view.set_test_set(data.x_test, data.y_test)
    with qtbot.waitSignal(view.error) as blocker:
        assert not view.evaluate()
    assert "no weights" in blocker.args[0]


@pytest.mark.slow
def test_window_evaluates_the_latest_weights_and_probes_a_mistake(qtbot, window, run_steps,
                                                                  dialog_errors):
    w = window
    run_steps(w, 100)
    view = w.file_actions.evaluation
    with qtbot.waitSignal(view.evaluated, timeout=20000) as blocker:
        view.evaluate_button.click()
    r = blocker.args[0]
    assert r.step == w.latest.step == 100
    expected = evaluate_weights(w.info.config, w.latest.params, w.info.x_test, w.info.y_test)
    assert (r.loss, r.accuracy) == (expected.loss, expected.accuracy)
    index = int(view.gallery.item(0).data(QtCore.Qt.UserRole))
    with qtbot.waitSignal(w.worker.snapshot, timeout=10000) as blocker:
        view._on_item_clicked(view.gallery.item(0))
    assert w.probe_panel.index_spin.value() == index
    trace = blocker.args[0].probe_trace
    np.testing.assert_array_equal(trace["labels"], [w.info.y_test[index]])
    assert dialog_errors == []


@pytest.mark.slow
def test_a_new_evaluation_replaces_a_running_one(qtbot, make_view, trained):
    config, params, data = trained
    view = make_view()
    view.set_test_set(np.repeat(data.x_test, 5, axis=0), np.repeat(data.y_test, 5))
    results = []
    view.evaluated.connect(results.append)
    for step in (1, 2, 3):  # each start cancels the one before
        assert view.start(config, params, step)
    qtbot.waitUntil(lambda: not view.running, timeout=20000)
    qtbot.wait(50)  # late signals of the cancelled runs change nothing
    assert [r.step for r in results] == [3] and view.result.step == 3
    assert view.evaluate_button.isEnabled()
