"""Help in the app: a short "what am I looking at" for every panel, the presets, the pooling
winners and the keyboard shortcuts.

Every panel gets a small "?" button in its top-right corner (``attach``); the Help menu lists
the same texts (``add_help_menu``). The texts are plain data here, one place to read and edit.
"""
from __future__ import annotations

from PyQt5.QtCore import QEvent, QObject, Qt
from PyQt5.QtWidgets import QDialog, QTextBrowser, QToolButton, QVBoxLayout, QWidget

PANELS = {
    "Controls": (
        "<p><b>Train</b> runs training until you pause it; <b>1 sample</b>, <b>1 batch</b> and "
        "<b>1 epoch</b> take one small step and stop (the button says what is running). "
        "<b>Speed</b> slows training down to watch single steps.</p>"
        "<p><b>Hyperparameters</b> apply at the next step: the learning rate is how far each "
        "step moves the weights; the batch is how many images one step averages over; "
        "momentum keeps part of the previous step's direction.</p>"
        "<p><b>Network and data</b> apply on <b>Reset</b>, which builds new weights from the "
        "seed. Choosing a preset fills in its whole recipe: learning rate, batch and momentum "
        "above, and under <b>Recipe</b> (the arrow opens it) the epochs, the learning-rate "
        "schedule, weight decay, Nesterov momentum and augmentation. You can still change "
        "them; all apply on Reset. When the recipe's epochs are done, training pauses; "
        "<b>Train</b> goes on at the schedule's last learning rate. Changing the learning "
        "rate during a run turns a cosine or onecycle schedule off.</p>"),
    "Probe digit": (
        "<p>The one test digit traced through the network: the feature maps, the prediction "
        "and the Inspector all show what happens to this digit. Pick another by its index, "
        "press Random, or draw one in the Draw tab.</p>"
        "<p>The network sees pixel / 255 &minus; 0.5: black background is &minus;0.5, ink "
        "+0.5.</p>"),
    "Feature maps": (
        "<p>What each convolution filter answers to on the probe digit: one small image per "
        "filter, red for positive, blue for negative. Below them, the pooled maps: each cell "
        "summarises a 2&times;2 window and is drawn as large as that window.</p>"
        "<p><b>Pooling winners</b> (the check box): in every window only the largest value "
        "survives max pooling. The winners stay bright and the losers are dimmed: "
        "the winners are the only pixels the gradient flows back to.</p>"),
    "Prediction": (
        "<p>The network's ten scores (logits, lower chart) and the probabilities softmax makes "
        "of them (upper chart). The tallest bar is the answer. Near 10% for every class the "
        "network is guessing: an untrained network is at chance.</p>"
        "<p>Green: the true class; red: a wrong answer.</p>"),
    "Filters": (
        "<p>The weights of the first convolution: one 3&times;3 kernel per filter. Red weights "
        "add the pixel under them, blue ones subtract it; a filter with red above and blue "
        "below finds horizontal edges. They change slowly while the network learns.</p>"),
    "Class templates": (
        "<p>The dense layer's weights, one column per class, cut into the shapes of the "
        "pooled maps they multiply (one row per map). Red: ink there raises that class's "
        "score; blue: it lowers it. After some training the columns look like blurred "
        "digits. With many classes (letters) they come in groups, one under the other: "
        "scroll with the wheel or the bar beside them.</p>"),
    "Loss": (
        "<p>How wrong the network is (cross-entropy; ln 10 = 2.3 is chance for ten classes), "
        "against the number of training images seen. Faint: each step; bold: its moving "
        "average; dots: each epoch's mean; squares: the test split. With label smoothing "
        "(the best recipe) the training loss is measured against the smoothed target and "
        "cannot fall below its floor (about 0.5 at 0.1 with ten classes); the test squares "
        "stay plain cross-entropy.</p>"
        "<p>Dashed, dimmed curves are branches left by going back (a Timeline resume or a "
        "divergence rollback); dotted ones are the previous run, kept until the next Reset. "
        "Wheel: zoom; right-click: log scale; the small A: follow the run again.</p>"),
    "Accuracy": (
        "<p>The share of images classified right: the running train accuracy (bold), each "
        "epoch's (dots) and the test split's (squares). 10% is chance. Dashed, dimmed: "
        "abandoned branches; dotted: the previous run.</p>"),
    "Inspector": (
        "<p>One training step on one sample, number by number: the forward pass, the loss, "
        "the gradients flowing back and the weight update, with the arithmetic of the cell you "
        "click. Take a step with <b>1 sample</b> to fill it.</p>"),
    "Timeline": (
        "<p>The loss of every step of this run, and snapshots of the weights along it "
        "(triangles). Drag the slider back to see any snapshot in the other panels; "
        "<b>Resume from here</b> continues from it: with the same learning rate the run repeats "
        "exactly, with another it forks and the old curve stays, dashed. The star is the "
        "run's best state, which is always kept.</p>"
        "<p>Wheel: zoom (over an axis: only that axis); log scale shows small losses and "
        "spikes together.</p>"),
    "Draw a digit": (
        "<p>Draw a digit with the mouse: the network reads it at once. Choose which network "
        "reads it: the network trained beforehand and shipped with the app, or the live one "
        "you are training. The network input is your drawing as the network sees it (28&times;28, "
        "centred like MNIST); saliency shows which pixels pushed the score up (red) or down "
        "(blue).</p>"),
    "Evaluation": (
        "<p>The whole test split through the current weights: the confusion matrix (rows: true "
        "class, columns: answer), the accuracy of each class and the digits it got most "
        "wrong.</p>"),
    "My digits": (
        "<p>Your own digits, drawn in the Draw tab and added with <b>Add to my digits</b>, "
        "kept as PNG files in one folder per class (shown below the gallery). One in five, "
        "marked <i>test</i>, is held back: the network never trains on it.</p>"
        "<p><b>Train on my digits</b> goes on training the live network on your digits mixed "
        "with the dataset's (the share is yours to set), then compares the held-back digits "
        "and the test set before and after. Its steps join the curves, marked "
        "<i>my digits</i>, and the Timeline.</p>"),
}

BOTTOM = {"Probe digit", "Inspector"}  # panels whose top row is full: their "?" sits bottom-right

PRESETS = (
    "<p><b>seed</b>: the design notes' network, one convolution (3&times;3, 8 filters), max "
    "pooling and one dense layer. Learns with one image per step at a small learning rate.</p>"
    "<p><b>deep</b>: two convolutions with ReLU, each followed by pooling: reads digits more "
    "reliably, wants batches and momentum.</p>"
    "<p><b>lenet</b>: LeCun's classic layout (5&times;5 convolutions, 16 and 32 filters, a "
    "hidden dense layer of 128): strong and slow.</p>"
    "<p><b>best</b>: lenet's layers trained longer on distorted digits (shifted, turned, "
    "scaled, slanted and warped), with Nesterov momentum, weight decay and a one-cycle "
    "learning rate: the most accurate. Its trained weights ship with ConvScope.</p>"
    "<p>Each preset comes with its recipe (learning rate, batch size, momentum, epochs, "
    "schedule): choosing one fills in the controls; Reset starts it.</p>")


def shortcuts_html(actions) -> str:
    """The keyboard shortcuts of ``actions`` (QActions), and where they do not apply."""
    rows = "".join(f"<tr><td>{a.text()}</td><td><b>{a.shortcut().toString()}</b></td></tr>"
                   for a in actions)
    return (f"<table cellspacing=6>{rows}</table>"
            "<p>They work wherever the focus is, also in number boxes (there ↑ and ↓ change "
            "the value); only while typing in a text field do Space and → type.</p>")


class HelpDialog(QDialog):
    """One non-modal window showing a help text (reused for every panel)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("help_dialog")
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        self.resize(440, 320)

    def show_text(self, title: str, html: str) -> None:
        self.setWindowTitle(title)
        self.text.setHtml(f"<h3>{title}</h3>{html}")
        self.show()
        self.raise_()


class _Corner(QObject):
    """Keeps a "?" button in the top-right corner of its panel."""

    def __init__(self, widget: QWidget, button: QToolButton, bottom: bool = False):
        super().__init__(widget)
        self.widget, self.button, self.bottom = widget, button, bottom
        widget.installEventFilter(self)
        self.place()

    def place(self) -> None:
        w, b = self.widget, self.button
        y = max(0, w.height() - b.height() - 2) if self.bottom else 2
        b.move(max(0, w.width() - b.width() - 2), y)
        b.raise_()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if event.type() in (QEvent.Resize, QEvent.Show):
            self.place()
        return False


def attach(widget: QWidget, name: str, show) -> QToolButton:
    """A small "?" in ``widget``'s top-right corner (bottom-right for the panels in BOTTOM)
    calling ``show(name)``."""
    button = QToolButton(widget)
    button.setObjectName("help_button")
    button.setText("?")
    button.setAutoRaise(True)
    button.setFixedSize(18, 18)
    button.setCursor(Qt.PointingHandCursor)
    button.setToolTip(f"What am I looking at? ({name})")
    button.clicked.connect(lambda: show(name))
    button._corner = _Corner(widget, button, bottom=name in BOTTOM)
    button.show()
    return button


def add_help_menu(menu, show, names) -> None:
    """Help menu entries: one per panel in ``names``, then the presets."""
    panels = menu.addMenu("What am I looking at?")
    for name in names:
        if name in PANELS:
            panels.addAction(name, lambda n=name: show(n))
    menu.addAction("Presets and recipes", lambda: show("Presets"))


def text_of(name: str) -> str:
    return PRESETS if name == "Presets" else PANELS.get(name, "<p>No help for this yet.</p>")
