"""`eval`: a saved model's loss, accuracy, per-class accuracy and confusion matrix."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from convscope.cli.common import (
    DATASET_NAMES,
    CommandError,
    UsageError,
    add_convert,
    data_spec,
    emit,
    info,
    int_range,
    interactive,
    progress_bar,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="evaluate a saved model on a test set",
        description="Evaluate a saved model on the test split of a dataset. DIR may hold "
        "only the two t10k-* files, or one folder of images per class. The data must have "
        "the classes the model was trained on.")
    p.add_argument("--model", required=True, metavar="PATH", help="model file")
    p.add_argument("--data", type=data_spec, default="mini",
                   metavar="{mini,mnist,fashion,DIR}", help="dataset (default mini)")
    p.add_argument("--test-size", type=int_range(1), metavar="N",
                   help="use the first N test images (default all)")
    add_convert(p)
    return p


def load_test_split(spec: str, convert: str = "mnist"):
    """(images (N, 28, 28) uint8, labels (N,), class names, skipped line) of a named dataset
    or directory."""
    from convscope.engine.data.datasets import load_dataset, load_test_dir
    from convscope.engine.data.idx_sets import pick_set
    if spec not in DATASET_NAMES and os.path.isdir(spec) and pick_set(
            Path(spec), need_train=False) is not None:
        dataset = load_test_dir(spec)
    else:
        dataset = load_dataset(spec, progress=interactive(), convert=convert)
    return dataset.x_test, dataset.y_test, list(dataset.class_names), dataset.skipped


def run(args) -> int:
    from convscope.engine.files.checkpoint import check_classes, load_model, model_class_names
    from convscope.engine.net.train import evaluate
    from convscope.engine.tools.metrics import confusion_matrix, per_class_accuracy

    model, _, extra = load_model(args.model)
    images, labels, names, skipped = load_test_split(
        args.data, args.convert or extra.get("convert", "mnist"))
    if skipped:
        info(args, skipped)
    check_classes(model_class_names(model, extra), names, args.model)
    if args.test_size is not None:
        if args.test_size > len(images):
            raise UsageError(f"--test-size {args.test_size} is more than the {len(images)} "
                             f"test images of {args.data}")
        images, labels = images[:args.test_size], labels[:args.test_size]
    if len(images) == 0:
        raise CommandError(f"{args.data} has no test images")
    bar = progress_bar(len(images), "eval")
    try:
        with np.errstate(all="ignore"):
            loss, accuracy, probs = evaluate(
                model, images, labels, progress=lambda done, _: bar.update(done - bar.n))
    finally:
        bar.close()
    confusion = confusion_matrix(labels, probs.argmax(axis=1), len(names))
    per_class = per_class_accuracy(confusion)
    payload = {"model": args.model, "dataset": args.data, "test_size": len(images),
               "test_loss": loss, "test_accuracy": accuracy,
               "per_class_accuracy": per_class, "confusion": confusion,
               "class_names": names}
    width = max(len(n) for n in names)
    lines = [f"{len(images)} test images: loss {loss:.4f}, accuracy {accuracy:.2%}", "",
             f"{'class':<{width}}  accuracy   " + " ".join(f"{i:>5}" for i in range(len(names)))]
    for i, name in enumerate(names):
        acc = "    -   " if np.isnan(per_class[i]) else f"{per_class[i]:8.2%}"
        lines.append(f"{name:<{width}}  {acc}   " + " ".join(f"{c:>5}" for c in confusion[i]))
    emit(args, payload, lines)
    return 0
