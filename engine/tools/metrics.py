"""Classification metrics: confusion matrix and per-class accuracy (pure NumPy)."""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, n: int = 10) -> np.ndarray:
    """Counts (n, n) int64: row = true class, column = predicted class.

    y_true, y_pred: integer labels (N,) in [0, n). The matrix sums to N.
    """
    y_true = np.asarray(y_true, dtype=np.intp).ravel()
    y_pred = np.asarray(y_pred, dtype=np.intp).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if len(y_true) and (min(y_true.min(), y_pred.min()) < 0
                        or max(y_true.max(), y_pred.max()) >= n):
        raise ValueError(f"labels must be in 0..{n - 1}")
    return np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n).astype(np.int64)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class (n,) float64: diagonal / row sum; NaN for a class with no sample."""
    confusion = np.asarray(confusion)
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / np.maximum(totals, 1), np.nan)
