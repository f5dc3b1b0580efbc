"""The drawing canvas and the draw panel, driven by synthetic mouse and key events."""
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from PyQt5.QtCore import QEvent, QObject, QPointF, Qt, pyqtSignal
from PyQt5.QtGui import QMouseEvent
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QApplication, QComboBox

from convscope.engine.data.datasets import DIGIT_NAMES, FASHION_NAMES
from convscope.engine.net.model import Model, build_config, prepare_input
from convscope.engine.net.train import Snapshot, Trainer
from convscope.visualizer.canvas import DrawCanvas
from convscope.visualizer.draw_panel import DrawPanel, attach
from convscope.visualizer.prob_chart import AXIS_W


def mouse(widget, kind, x, y, button=Qt.LeftButton):
    """Send one mouse event (QTest.mouseMove cannot drag on a widget offscreen)."""
    held = Qt.NoButton if kind == QEvent.MouseButtonRelease else button
    changed = Qt.NoButton if kind == QEvent.MouseMove else button
    event = QMouseEvent(kind, QPointF(x, y), changed, held, Qt.NoModifier)
    QApplication.sendEvent(widget, event)


def stroke(widget, points):
    mouse(widget, QEvent.MouseButtonPress, *points[0])
    for p in points[1:]:
        mouse(widget, QEvent.MouseMove, *p)
    mouse(widget, QEvent.MouseButtonRelease, *points[-1])


def one_points(x=140):
    return [(x, y) for y in range(50, 241, 8)]  # a vertical stroke


def zero_points():
    return [(140 + 60 * math.sin(t), 140 - 90 * math.cos(t))
            for t in np.linspace(0, 2 * math.pi, 60)]  # a closed loop


@pytest.fixture(scope="module")
def trained_model(mini):
    """The deep preset after one epoch on the embedded digits (a few seconds)."""
    data = mini
    model = Model(build_config("deep"), seed=0)
    trainer = Trainer(model, data.x_train, data.y_train, lr=0.05, momentum=0.9,
                      batch_size=32, seed=0)
    trainer.fit(1)
    return model


@pytest.fixture
def panel(qtbot, trained_model):
    widget = DrawPanel()
    qtbot.addWidget(widget)
    widget.set_model(trained_model)
    widget.show()
    return widget


# ---- canvas alone -------------------------------------------------------------------------
@pytest.mark.slow
def test_stroke_gives_ink_in_the_centre_of_the_network_input(qtbot):
    from convscope.engine.data.preprocess import preprocess_digit
    canvas = DrawCanvas()
    qtbot.addWidget(canvas)
    assert canvas.is_empty() and canvas.ink_array().max() == 0
    with qtbot.waitSignal(canvas.ink_changed, timeout=1000):
        stroke(canvas, [(60, 60), (90, 80), (120, 110)])  # small, off-centre
    assert len(canvas.strokes) == 1 and len(canvas.strokes[0]) == 3
    ink = canvas.ink_array()
    assert ink.shape == (280, 280)
    assert ink[80, 90] == 255 and ink[200, 200] == 0
    # segments are joined, not dotted: ink all along the line between two events
    assert all(ink[60 + k, 60 + round(k * 1.5)] > 200 for k in range(20))
    digit = preprocess_digit(ink)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    rows, cols = np.nonzero(digit > 0)
    weights = digit[rows, cols].astype(float)
    assert abs(np.average(rows, weights=weights) - 13.5) < 1.5
    assert abs(np.average(cols, weights=weights) - 13.5) < 1.5
    assert digit[12:16, 12:16].max() > 100


def test_undo_removes_only_the_last_stroke(qtbot):
    canvas = DrawCanvas()
    qtbot.addWidget(canvas)
    stroke(canvas, one_points(80))
    first = canvas.ink_array()
    stroke(canvas, one_points(200))
    assert len(canvas.strokes) == 2
    assert not np.array_equal(canvas.ink_array(), first)
    canvas.undo()
    assert len(canvas.strokes) == 1
    np.testing.assert_array_equal(canvas.ink_array(), first)
    canvas.undo()
    assert canvas.is_empty() and canvas.ink_array().max() == 0
    canvas.undo()  # nothing left: no error
    assert canvas.is_empty()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["button", "right_click", "delete", "escape"])
def test_clear(panel, how):
    stroke(panel.canvas, one_points())
    assert panel.prediction() is not None
    if how == "button":
        panel.clear_button.click()
    elif how == "right_click":
        mouse(panel.canvas, QEvent.MouseButtonPress, 100, 100, Qt.RightButton)
    else:
        QTest.keyClick(panel.canvas, Qt.Key_Delete if how == "delete" else Qt.Key_Escape)
    assert panel.canvas.is_empty() and panel.canvas.ink_array().max() == 0
    assert panel.prediction() is None and panel.digit is None
    assert panel.confidence_label.text() == "draw a digit"
    assert panel.prob_chart.probs is None and panel.saliency_view.array is None


# ---- the panel ----------------------------------------------------------------------------
@pytest.mark.slow
def test_empty_canvas_shows_draw_a_digit(panel):
    assert panel.prediction() is None
    assert panel.confidence_label.text() == "draw a digit"
    assert panel.class_label.text() == ""
    panel.set_model(panel.model)  # new weights with nothing drawn: still nothing
    assert panel.prediction() is None


@pytest.mark.slow
def test_drawn_one_and_zero_are_classified(panel, qtbot):
    with qtbot.waitSignal(panel.probe_changed, timeout=1000) as probe:
        stroke(panel.canvas, one_points())
    assert panel.prediction()[0] == 1
    assert panel.class_label.text() == "1"
    assert probe.args[0].shape == (28, 28) and probe.args[0].dtype == np.uint8
    np.testing.assert_array_equal(probe.args[0], panel.digit)
    panel.clear_button.click()
    stroke(panel.canvas, zero_points())
    assert panel.prediction()[0] == 0
    assert panel.class_label.text() == "0"


@pytest.mark.slow
def test_saliency_overlay_follows_the_chosen_class(panel):
    stroke(panel.canvas, one_points())
    top = panel.grad.copy()
    assert top.shape == (28, 28)
    ink = panel.digit > 128
    assert np.abs(top[ink]).max() > 0 and np.count_nonzero(top[ink]) > ink.sum() // 2
    assert panel.saliency_view.array.shape == (28, 28, 3)
    panel.saliency_combo.setCurrentIndex(panel.saliency_combo.findData(7))
    assert panel.saliency_class() == 7
    assert not np.allclose(panel.grad, top)


@pytest.mark.slow
def test_probe_changed_on_settle_only(panel, qtbot):
    seen = []
    panel.probe_changed.connect(seen.append)
    mouse(panel.canvas, QEvent.MouseButtonPress, 140, 50)
    for y in range(50, 241, 10):
        mouse(panel.canvas, QEvent.MouseMove, 140, y)
    assert seen == []  # the stroke is still growing
    qtbot.waitUntil(lambda: panel.prediction() is not None, timeout=1000)  # throttled update
    mouse(panel.canvas, QEvent.MouseButtonRelease, 140, 240)
    assert len(seen) == 1 and seen[0] is not None
    panel.undo_button.click()
    assert len(seen) == 2 and seen[1] is None


@pytest.mark.slow
def test_private_copy_of_the_model(panel, trained_model):
    stroke(panel.canvas, one_points())
    before = panel.probs.copy()
    assert panel.model is not trained_model
    # new weights arrive as a params dict (a trainer snapshot's form)
    zeros = {k: np.zeros_like(v) for k, v in trained_model.params().items()}
    panel.set_model(zeros)
    np.testing.assert_allclose(panel.probs, np.full(10, 0.1), atol=1e-6)
    assert np.abs(trained_model.params()["dense1.W"]).max() > 0  # the source is untouched
    panel.set_model(trained_model)
    np.testing.assert_allclose(panel.probs, before)
    # weights of another architecture do not fit: no guess until a model arrives
    panel.set_model({"conv1.W": np.zeros((3, 3, 1, 8), np.float32)})
    assert panel.prediction() is None and panel.confidence_label.text() == "no model yet"


@pytest.mark.slow
def test_open_image_classifies_a_file(panel, tmp_path, mini):
    from PIL import Image
    data = mini
    i = int(np.nonzero(data.y_test == 3)[0][0])
    page = 255 - np.kron(data.x_test[i], np.ones((10, 10), np.uint8))  # dark ink on white
    path = tmp_path / "three.png"
    Image.fromarray(page).save(path)
    assert panel.open_image(path)
    assert not panel.error_label.isVisible()
    assert panel.prediction()[0] == 3
    assert not panel.canvas.is_empty()


@pytest.mark.slow
def test_open_non_image_shows_an_error_and_changes_nothing(panel, qtbot, tmp_path):
    stroke(panel.canvas, one_points())
    strokes = [list(s) for s in panel.canvas.strokes]
    ink, digit, probs = panel.canvas.ink_array(), panel.digit.copy(), panel.probs.copy()
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image\n")
    with qtbot.waitSignal(panel.error, timeout=1000) as err:
        assert panel.open_image(bad) is False
    assert "notes.png" in err.args[0] and "\n" not in err.args[0]
    assert panel.error_label.isVisibleTo(panel) and panel.error_label.text() == err.args[0]
    assert panel.canvas.strokes == strokes
    np.testing.assert_array_equal(panel.canvas.ink_array(), ink)
    np.testing.assert_array_equal(panel.digit, digit)
    np.testing.assert_array_equal(panel.probs, probs)
    stroke(panel.canvas, one_points(100))  # drawing again dismisses the message
    assert not panel.error_label.isVisibleTo(panel)


@pytest.mark.slow
def test_load_test_digit(panel, mini):
    data = mini
    panel.set_test_digits(data.x_test, data.y_test)
    panel.load_test_digit(0)
    assert panel.probe_label == int(data.y_test[0])
    assert panel.prediction()[0] == int(data.y_test[0])
    assert str(int(data.y_test[0])) in panel.source_label.text()
    panel.canvas.undo()  # undo with no stroke removes the loaded digit
    assert panel.canvas.is_empty() and panel.prediction() is None


@pytest.mark.slow
def test_panel_renders_something(panel):
    stroke(panel.canvas, zero_points())
    image = panel.grab().toImage()
    bars = panel.prob_chart.grab().toImage()
    highlight = panel.palette().color(panel.palette().Highlight).rgb()
    slot = (bars.width() - AXIS_W) / 10  # class 0, the top class, is the first bar
    hits = [bars.pixel(int(AXIS_W + slot * (0.5 + k)), y) == highlight
            for k in range(10) for y in range(bars.height())]
    assert sum(hits[:bars.height()]) > 40 and sum(hits[bars.height():]) == 0
    assert image.width() >= 500 and image.height() >= 300


@pytest.mark.slow
def test_load_test_digit_announces_it_once_with_its_label(panel, qtbot, mini):
    data = mini
    panel.set_test_digits(data.x_test, data.y_test)
    seen = []
    panel.probe_changed.connect(seen.append)
    panel.load_test_digit(5)
    assert len(seen) == 1 and panel.probe_label == int(data.y_test[5])
    assert "test digit #5" in panel.probe_source
    stroke(panel.canvas, one_points(30))  # drawn over: no longer that labelled digit
    assert len(seen) == 2 and panel.probe_label is None


class FakeWindow(QObject):
    """The parts of visualizer.main_window.MainWindow that ``attach`` uses."""
    run_started = pyqtSignal(object)
    snapshot_shown = pyqtSignal(object)
    evaluated = pyqtSignal(object)

    def __init__(self):
        super().__init__()
        self.info = None
        self.panels, self.probes = {}, []
        self.probe_panel = SimpleNamespace(index_spin=SimpleNamespace(value=lambda: 4))

    def add_panel(self, name, widget, area):
        self.panels[name] = (widget, area)

    def set_probe(self, image, label=None, source="", traced=None):
        self.probes.append(("drawing", image, label, source))

    def set_probe_index(self, index):
        self.probes.append(("test", index))


@pytest.mark.slow
def test_attach_wires_weights_and_probe(qtbot, trained_model, mini):
    window = FakeWindow()
    panel = attach(window)
    qtbot.addWidget(panel)
    panel.show()
    assert window.panels["Draw a digit"] == (panel, "tab")
    data = mini
    window.info = SimpleNamespace(config=trained_model.config, x_test=data.x_test,
                                  y_test=data.y_test, class_names=list(data.class_names))
    window.run_started.emit(window.info)
    assert panel.test_images is data.x_test
    panel.networks.choose("live")
    params = {k: v.copy() for k, v in trained_model.params().items()}
    window.snapshot_shown.emit(Snapshot(step=1, epoch=0, params=params))
    assert panel.model is not None and panel.model.config == trained_model.config
    stroke(panel.canvas, one_points())
    assert panel.prediction()[0] == 1
    kind, image, label, source = window.probes[-1]
    assert kind == "drawing" and label is None and source == "your drawing"
    np.testing.assert_array_equal(image, panel.digit)
    panel.clear_button.click()
    assert window.probes[-1] == ("test", 4)  # back to the chosen test digit


@pytest.mark.slow
def test_class_names_of_the_run_name_the_saliency_classes_and_test_digits(qtbot,
                                                                          trained_model, mini):
    window = FakeWindow()
    panel = attach(window)
    qtbot.addWidget(panel)
    panel.show()
    data = mini
    params = {k: v.copy() for k, v in trained_model.params().items()}

    def reset(names):  # what a Reset to another dataset sends
        window.info = SimpleNamespace(config=trained_model.config, x_test=data.x_test,
                                      y_test=data.y_test, class_names=list(names))
        window.run_started.emit(window.info)
        window.snapshot_shown.emit(Snapshot(step=1, epoch=0, params=params))

    reset(DIGIT_NAMES)
    stroke(panel.canvas, zero_points())
    width = panel.sizeHint().width()
    reset(FASHION_NAMES)
    combo = panel.saliency_combo
    assert [combo.itemText(i) for i in range(1, 11)] == FASHION_NAMES
    fresh = QComboBox()
    fresh.addItems([combo.itemText(i) for i in range(combo.count())])
    assert combo.sizeHint().width() >= fresh.sizeHint().width()  # "Ankle boot" not clipped
    assert panel.class_label.text() == "T-shirt/top"  # the drawn zero, read as class 0
    assert panel.sizeHint().width() <= width  # the longest name does not widen the panel
    label = int(data.y_test[3])
    panel.load_test_digit(3)
    assert panel.source_label.text() == f"test digit #3, labelled {FASHION_NAMES[label]}"
    reset(DIGIT_NAMES)
    assert [combo.itemText(i) for i in range(1, 11)] == DIGIT_NAMES
    panel.load_test_digit(3)
    assert panel.source_label.text() == f"test digit #3, labelled {label}"


def attached(qtbot, model, data, names=DIGIT_NAMES):
    """A Draw tab attached to a FakeWindow whose run has begun, with ``model`` as the live
    weights shown at step 7."""
    window = FakeWindow()
    panel = attach(window)
    qtbot.addWidget(panel)
    panel.show()
    window.info = SimpleNamespace(config=model.config, x_test=data.x_test, y_test=data.y_test,
                                  class_names=list(names))
    window.run_started.emit(window.info)
    params = {k: v.copy() for k, v in model.params().items()}
    window.snapshot_shown.emit(Snapshot(step=7, epoch=0, params=params))
    return window, panel


@pytest.mark.slow
def test_the_shipped_network_reads_a_drawing_while_the_live_one_is_untrained(qtbot, mini):
    untrained = Model(build_config("seed"), seed=0)
    window, panel = attached(qtbot, untrained, mini)
    combo = panel.networks.combo
    assert panel.networks.using_shipped() and panel.model.config["preset"] == "best"
    assert re.fullmatch(r"Shipped best network \(99\.\d%, trained beforehand\)",
                        combo.itemText(0))
    assert combo.itemText(1) == "Live network (step 7)"
    stroke(panel.canvas, one_points())
    assert panel.prediction()[0] == 1 and panel.prediction()[1] > 0.9
    assert window.probes[-1][0] == "drawing"
    panel.clear_button.click()
    stroke(panel.canvas, zero_points())
    assert panel.prediction()[0] == 0
    shipped_probs = panel.probs.copy()

    panel.networks.choose("live")  # the untrained network reads the same zero its own way
    assert panel.model.config == untrained.config
    x = prepare_input(panel.digit[None])
    expected = np.exp(untrained.forward(x)[0] - untrained.forward(x)[0].max())
    np.testing.assert_allclose(panel.probs, expected / expected.sum(), rtol=1e-5)
    assert not np.allclose(panel.probs, shipped_probs)
    panel.networks.choose("shipped")
    np.testing.assert_allclose(panel.probs, shipped_probs)


@pytest.mark.slow
def test_the_live_network_reads_once_it_has_learnt_unless_the_learner_chose(qtbot, mini):
    window, panel = attached(qtbot, Model(build_config("seed"), seed=0), mini)
    networks = panel.networks
    window.evaluated.emit(SimpleNamespace(test_accuracy=0.42))
    assert networks.using_shipped()
    window.evaluated.emit(SimpleNamespace(test_accuracy=0.97))
    assert not networks.using_shipped() and panel.model.config["preset"] == "seed"
    window.run_started.emit(window.info)  # a new run is young again
    assert networks.using_shipped()
    networks.choose("live")
    window.evaluated.emit(SimpleNamespace(test_accuracy=0.1))
    window.run_started.emit(window.info)
    assert not networks.using_shipped()  # the learner's choice is kept
    networks.choose("shipped")
    window.evaluated.emit(SimpleNamespace(test_accuracy=0.99))
    assert networks.using_shipped()


@pytest.mark.slow
def test_clothes_are_read_by_the_live_network(qtbot, trained_model, mini):
    _, panel = attached(qtbot, trained_model, mini, FASHION_NAMES)
    assert not panel.networks.using_shipped()
    assert panel.model.config == trained_model.config
    assert panel.prob_chart.labels[:1] != ["0"]


def test_pen_tablet_pressure_sets_the_width(qtbot):
    from PyQt5.QtGui import QTabletEvent
    canvas = DrawCanvas(brush_width=20)
    qtbot.addWidget(canvas)

    def pen(kind, x, y, pressure):
        event = QTabletEvent(kind, QPointF(x, y), QPointF(x, y), QTabletEvent.Stylus,
                             QTabletEvent.Pen, pressure, 0, 0, 0.0, 0.0, 0, Qt.NoModifier,
                             1, Qt.LeftButton, Qt.LeftButton)
        QApplication.sendEvent(canvas, event)
        return event.isAccepted()

    assert pen(QEvent.TabletPress, 100, 60, 0.0)
    pen(QEvent.TabletMove, 100, 140, 0.5)
    pen(QEvent.TabletMove, 100, 220, 1.0)
    pen(QEvent.TabletRelease, 100, 220, 1.0)
    assert [round(w, 3) for _, _, w in canvas.strokes[0]] == [8.0, 14.0, 20.0]
    ink = canvas.ink_array()
    assert ink[140, 100] == 255 and ink[140, 115] == 0  # thinner than the full brush


@pytest.mark.slow
def test_open_button_explains_a_bad_file_in_a_dialog(panel, monkeypatch, tmp_path,
                                                     dialog_errors):
    from convscope.visualizer import dialogs

    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not an image\n")
    shown = dialog_errors
    monkeypatch.setattr(dialogs, "ask_open_path", lambda *a: str(bad))
    panel._choose_file()
    assert len(shown) == 1 and "notes.jpg" in shown[0] and "\n" not in shown[0]
    assert panel.canvas.is_empty()


@pytest.mark.slow
def test_a_drawing_in_the_window_is_classified_once_and_traced_in_every_view(qtbot, window,
                                                                             monkeypatch):
    """Paused, a finished stroke is classified once (by the Draw tab, on its copy of the
    weights shown): the probe views show that trace without asking the worker, and the
    worker, asked afterwards, traces the same numbers."""
    import threading

    import convscope.visualizer.draw_panel as draw_module

    window.show()
    qtbot.waitExposed(window)
    names = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    window.tabs.setCurrentIndex(names.index("Draw a digit"))
    panel = window.draw_panel
    panel.networks.choose("live")
    qtbot.waitUntil(lambda: panel.weights is not None and panel.weights is window.latest.params)
    calls = {"gui": 0, "worker": 0, "saliency": 0}
    forward, saliency = Model.forward, draw_module.saliency

    def counted_forward(model, x, *args, **kwargs):
        if not calls.get("in_saliency"):
            main = threading.current_thread() is threading.main_thread()
            calls["gui" if main else "worker"] += 1
        return forward(model, x, *args, **kwargs)

    def counted_saliency(*args, **kwargs):
        calls["saliency"] += 1
        calls["in_saliency"] = True
        try:
            return saliency(*args, **kwargs)
        finally:
            calls["in_saliency"] = False

    monkeypatch.setattr(Model, "forward", counted_forward)
    monkeypatch.setattr(draw_module, "saliency", counted_saliency)
    points = one_points()
    mouse(panel.canvas, QEvent.MouseButtonPress, *points[0])
    for p in points[1:]:
        mouse(panel.canvas, QEvent.MouseMove, *p)
    panel._throttle.stop()  # the stroke is drawn; what follows is its release
    calls.update(gui=0, worker=0, saliency=0)
    mouse(panel.canvas, QEvent.MouseButtonRelease, *points[-1])
    drawn = prepare_input(panel.digit[None])
    qtbot.waitUntil(lambda: np.array_equal(window.latest.probe_trace["input"], drawn)
                    and window.probs_panel.probs is not None and np.allclose(
                        window.probs_panel.probs, window.latest.probe_trace["probs"][0]))
    qtbot.wait(200)  # a round trip to the worker, had there been one, would be back by now
    assert calls["gui"] == 1 and calls["worker"] == 0 and calls["saliency"] == 1
    shown = window.latest.probe_trace
    assert window.probs_panel.probs.argmax() == panel.prediction()[0]
    with qtbot.waitSignal(window.worker.snapshot, timeout=10000) as blocker:
        window.worker.probe(panel.digit, None)  # the worker traces the same digit itself
    traced = blocker.args[0].probe_trace
    assert calls["worker"] == 1 and sorted(traced) == sorted(shown)
    for key, value in traced.items():
        np.testing.assert_allclose(shown[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
