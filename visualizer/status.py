"""The status bar: step, epoch, samples seen, samples/s, learning rate, train/test accuracy."""
from __future__ import annotations

from PyQt5.QtWidgets import QLabel, QStatusBar


class TrainingStatusBar(QStatusBar):
    FIELDS = ("state", "step", "epoch", "samples", "rate", "lr", "train", "test")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.labels: dict[str, QLabel] = {}
        for name in self.FIELDS:
            label = QLabel("")
            label.setObjectName(f"status_{name}")
            label.setContentsMargins(6, 0, 6, 0)
            self.addPermanentWidget(label)
            self.labels[name] = label
        self.labels["rate"].setToolTip("Training speed, averaged over the last two seconds")
        self.values: dict[str, object] = {}
        self.set_values(state="starting…")

    def set_values(self, **values) -> None:
        """Any of: state (str), step, epoch, samples (int), epoch_progress (0..1), rate
        (samples/s), lr, train, test (accuracies 0..1 or None)."""
        self.values.update(values)
        v = self.values
        text = {
            "state": v.get("state", ""),
            "step": f"step {v['step']:,}" if "step" in v else "",
            "epoch": (f"epoch {v['epoch']} ({v.get('epoch_progress', 0):.0%})"
                      if "epoch" in v else ""),
            "samples": (f"{v['samples']:,} sample{'' if v['samples'] == 1 else 's'}"
                        if "samples" in v else ""),
            "rate": f"{v['rate']:,.0f} samples/s" if v.get("rate") else "",
            "lr": f"lr {v['lr']:g}" if "lr" in v else "",
            "train": f"train {v['train']:.1%}" if v.get("train") is not None else "",
            "test": f"test {v['test']:.1%}" if v.get("test") is not None else "",
        }
        for name, label in self.labels.items():
            if label.text() != text[name]:  # each change costs a relayout
                label.setText(text[name])
                label.setVisible(bool(text[name]))
