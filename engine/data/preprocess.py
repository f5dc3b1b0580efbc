"""Turn any grayscale picture of a digit into a 28x28 MNIST-style input, the way MNIST was made.

1. normalise polarity: ink bright, background 0 (the background is the median of the border);
2. crop to the ink's bounding box;
3. scale the longer side to 20 px keeping the aspect ratio (anti-aliased resampling);
4. paste into a 28x28 frame so the ink's centre of mass is at row 14, column 14 (where it is
   in MNIST: the mean over the official test set is (13.99, 14.01) in 0-based pixel indices).

A blank or nearly blank picture gives None: there is nothing to classify.
"""
from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from convscope.engine.data.idx import DataError
from convscope.engine.files.guard import open_regular

SIZE = 28
BOX = 20  # longer side of the digit after scaling
CENTRE = 14.0  # row and column of the centre of mass
MIN_CONTRAST = 0.1  # ink must differ from the background by 10% of the full range
NOISE = 0.1  # ink weaker than 10% of the strongest is background (paper, JPEG noise)
MIN_INK_FRACTION = 0.0005  # fewer strong ink pixels than this share of the picture: blank
MIN_EXTENT = 0.04  # ink spanning less than 4% of the picture's longer side: a speck


def _unit_range(image: np.ndarray) -> np.ndarray:
    """float64 copy in [0, 1]: integers by their dtype's maximum, floats as [0, 1] or [0, 255]."""
    if image.dtype == bool:
        return image.astype(np.float64)
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float64) / np.iinfo(image.dtype).max
    a = image.astype(np.float64)
    return a / 255.0 if a.max() > 1.0 else a


def ink_map(image: np.ndarray) -> np.ndarray | None:
    """(H, W) float in [0, 1], ink bright on 0 and its strongest pixel 1, or None when blank."""
    a = _unit_range(image)
    border = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])
    background = float(np.median(border))
    ink = np.clip(background - a if background > 0.5 else a - background, 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        return None
    ink /= peak
    ink[ink < NOISE] = 0.0
    if np.count_nonzero(ink > 0.5) < max(1.0, MIN_INK_FRACTION * ink.size):
        return None
    return ink


def preprocess_digit(image: np.ndarray) -> np.ndarray | None:
    """Any 2-D grayscale array (H, W), either polarity, uint8 or float -> uint8 (28, 28) with
    the ink bright on 0, MNIST-style; None when the picture is blank or nearly blank."""
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise DataError(f"expected a 2-D grayscale image, got an array of shape {image.shape}")
    if not np.issubdtype(image.dtype, np.number) and image.dtype != bool:
        raise DataError(f"expected a numeric image, got dtype {image.dtype}")
    if not np.isfinite(image).all():
        raise DataError("the image contains NaN or infinite values")
    ink = ink_map(image)
    if ink is None:
        return None
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    if max(h, w) < MIN_EXTENT * max(ink.shape):
        return None
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # (h, w)
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    patch = Image.fromarray(crop.astype(np.float32)).resize(  # mode "F"
        (nw, nh), Image.Resampling.LANCZOS)
    patch = np.clip(np.asarray(patch, dtype=np.float64), 0.0, None)  # (nh, nw); no ringing
    patch /= patch.max()
    mass = patch.sum()
    cy = (patch.sum(axis=1) @ np.arange(nh)) / mass
    cx = (patch.sum(axis=0) @ np.arange(nw)) / mass
    top = int(np.clip(round(CENTRE - cy), 0, SIZE - nh))
    left = int(np.clip(round(CENTRE - cx), 0, SIZE - nw))
    out = np.zeros((SIZE, SIZE), dtype=np.float64)
    out[top:top + nh, left:left + nw] = patch
    return np.round(out * 255).astype(np.uint8)


MAX_PIXELS = 40_000_000  # pixels a picture may declare (Pillow's own limit is 89 million)
MAX_SIDE = 1024  # a larger picture is reduced to this while it is decoded
MAX_IMAGE_BYTES = 64 * 2**20
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")  # nothing else is ever opened


def load_image(path) -> np.ndarray:
    """(H, W) float32 grayscale in [0, 1] from a PNG, JPEG, BMP, GIF, WebP or TIFF file;
    transparent parts count as white paper. A picture declaring more than MAX_PIXELS pixels is
    refused before it is decoded; a large one is reduced to at most MAX_SIDE pixels a side
    (JPEGs while they are decoded). Raises DataError (one line, naming the file) for anything
    else, including regular files only."""
    with open_regular(path, DataError, "image file", MAX_IMAGE_BYTES) as f:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(f, formats=FORMATS) as img:
                    w, h = img.size
                    if w * h > MAX_PIXELS:
                        raise DataError(f"{path}: {w}x{h} pixels is more than the "
                                        f"{MAX_PIXELS:,} a picture may have")
                    img.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale
                    img.load()
                    if max(img.size) > MAX_SIDE:
                        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BOX)
                    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                        rgba = img.convert("RGBA")
                        img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
                    wide = img.mode in ("I", "I;16", "F")
                    gray = img.convert("F") if wide else img.convert("L")
                    array = np.asarray(gray, dtype=np.float32)
        except UnidentifiedImageError:
            raise DataError(f"{path}: not an image file ConvScope reads (PNG, JPEG, BMP, GIF, "
                            f"WebP or TIFF)") from None
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"{path}: cannot read the image ({e})") from None
    if gray.mode == "L":
        return array / 255.0
    peak = float(array.max()) if array.size else 0.0
    return array / (65535.0 if peak > 255 else 255.0)
