"""`predict`: classify image files (PNG, JPG, ...) with a saved model."""
from __future__ import annotations

import argparse

import numpy as np

from convscope.cli.common import add_convert, emit


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict", help="classify image files with a saved model",
        description="Classify images: each is turned into a 28x28 MNIST-style digit (ink "
        "bright on black, centred; or resized whole, as the model's training pictures were) "
        "and fed to the model. A blank image gives no prediction.")
    p.add_argument("--model", required=True, metavar="PATH", help="model file")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_convert(p)
    return p


def run(args) -> int:
    from convscope.engine.data.folders import convert_image
    from convscope.engine.files.checkpoint import load_model, model_class_names
    from convscope.engine.net.model import prepare_input

    model, _, extra = load_model(args.model)
    names = model_class_names(model, extra)
    convert = args.convert or extra.get("convert", "mnist")
    digits = [convert_image(path, convert) for path in args.images]  # all or nothing
    predictions, lines = [], []
    for path, digit in zip(args.images, digits, strict=True):
        if digit is None:
            predictions.append({"file": path, "predicted": None, "probabilities": None})
            lines.append(f"{path}: blank image, no prediction")
            continue
        with np.errstate(all="ignore"):
            probs = model.predict_proba(prepare_input(digit[None]))[0].astype(float)
        k = int(probs.argmax())
        predictions.append({"file": path, "predicted": k, "label": names[k],
                            "probabilities": [round(p, 6) for p in probs.tolist()]})
        lines.append(f"{path}: {names[k]} ({probs[k]:.1%})")
    emit(args, {"model": args.model, "predictions": predictions}, lines)
    return 0
