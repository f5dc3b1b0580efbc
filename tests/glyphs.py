"""Drawn glyphs for datasets made in tests: each class is a stroke of its own (a seeded
polyline), each picture that stroke shifted, scaled and wobbled, in varied sizes, colours,
modes and file formats, so a short training tells the classes apart well above chance."""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

LETTERS = list(string.ascii_uppercase)  # 26 class names
FORMATS = (("png", "L"), ("jpg", "RGB"), ("bmp", "RGB"), ("gif", "P"), ("png", "RGBA"))


def stroke(c: int) -> np.ndarray:
    """Class ``c``'s polyline: 4 points (x, y) in [0.1, 0.9]."""
    return np.random.default_rng(1000 + c).uniform(0.1, 0.9, (4, 2))


def glyph(c: int, rng, size: int | None = None, light: bool | None = None) -> Image.Image:
    """A picture of class ``c`` (grey "L", ink dark on light paper or the reverse)."""
    size = size or int(rng.integers(28, 72))
    light = bool(rng.integers(2)) if light is None else light
    pts = stroke(c) + rng.normal(0, 0.03, (4, 2))
    scale, shift = rng.uniform(0.7, 1.0), rng.uniform(-0.08, 0.08, 2)
    pts = ((pts - 0.5) * scale + 0.5 + shift) * size
    paper, ink = (235, 20) if light else (10, 245)
    img = Image.new("L", (size, size), paper)
    ImageDraw.Draw(img).line([tuple(p) for p in pts], fill=ink,
                             width=max(2, round(size * rng.uniform(0.07, 0.11))))
    return img


def glyph_array(c: int, rng) -> np.ndarray:
    """uint8 (28, 28) of class ``c``, bright ink on black, as an IDX file stores it."""
    return np.asarray(glyph(c, rng, size=28, light=False), dtype=np.uint8)


def write_folder(root: Path, names, per_class: int, seed: int = 0) -> Path:
    """root/<name>/<i>.<ext>: ``per_class`` pictures of each class in mixed formats."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            ext, mode = FORMATS[(c + i) % len(FORMATS)]
            glyph(c, rng).convert(mode).save(root / name / f"{i}.{ext}")
    return root
