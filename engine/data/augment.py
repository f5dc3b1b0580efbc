"""Data augmentation: random small distortions of training digits, drawn from a seeded rng.

Kinds (a training run names any of them, e.g. ("shift", "rotate", "scale", "elastic")):
    shift    move the digit by up to ``shift`` pixels in x and y
    rotate   turn it by up to ``rotate`` degrees about the image centre
    scale    grow or shrink it by up to ``scale`` (0.12 = 12%)
    shear    slant it by up to ``shear`` (x' = x + shear * y)
    elastic  a smooth random displacement field of ``elastic`` pixels (standard deviation)

Shift alone moves whole pixels (``shift_images``, zero fill). Any other kind resamples every
image once: each output pixel p (row, column about the centre c) reads the input at
    source(p) = M @ (p - c) + c + t + d(p)
with M the random 2x2 affine matrix (rotation, scale, shear), t the random shift and d the
elastic field, by bilinear interpolation (zero outside the image). Every random number comes
from the rng handed in (the Trainer's), so a saved generator state replays the same images.
"""
from __future__ import annotations

import numpy as np

KINDS = ("shift", "rotate", "scale", "shear", "elastic")
# Magnitudes: shift in pixels, rotate in degrees, scale and shear as fractions, elastic in
# pixels (the field's standard deviation).
MAGNITUDES = {"shift": 2.0, "rotate": 12.0, "scale": 0.12, "shear": 0.2, "elastic": 1.0}
ELASTIC_GRID = 5  # coarse noise points per side; a Gaussian blur spreads them over the image
ELASTIC_SIGMA = 0.22  # width of that blur, as a fraction of the image side


def parse_kinds(text) -> tuple[str, ...]:
    """"shift,rotate" -> ("shift", "rotate"); "none" or "" -> (); True -> ("shift",) (model
    files and callers from before the kinds: a boolean meant 2-pixel shifts), False -> ().
    ValueError names an unknown kind."""
    if isinstance(text, bool) or text is None:
        return ("shift",) if text else ()
    if isinstance(text, (list, tuple)):
        parts = [str(p) for p in text]
    else:
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if parts in (["none"], []):
        return ()
    for p in parts:
        if p not in KINDS:
            raise ValueError(f"unknown augmentation {p!r} (choose from {', '.join(KINDS)}, "
                             f"or none)")
    return tuple(k for k in KINDS if k in parts)  # one order whatever the spelling


def shift_images(images: np.ndarray, rng: np.random.Generator, max_shift: int = 2) -> np.ndarray:
    """Random translation of each image (N, H, W) by up to ``max_shift`` whole pixels (zero
    fill)."""
    n, h, w = images.shape
    m = max_shift
    padded = np.zeros((n, h + 2 * m, w + 2 * m), dtype=images.dtype)
    padded[:, m:m + h, m:m + w] = images
    dy = rng.integers(0, 2 * m + 1, n)
    dx = rng.integers(0, 2 * m + 1, n)
    rows = dy[:, None, None] + np.arange(h)[None, :, None]
    cols = dx[:, None, None] + np.arange(w)[None, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols]


def affine_matrices(n: int, rng: np.random.Generator, kinds, magnitudes=None) -> np.ndarray:
    """(n, 2, 2) random matrices M (row, column order) of rotation, scale and shear: the
    identity for the kinds left out or a magnitude of 0."""
    mag = {**MAGNITUDES, **(magnitudes or {})}
    m = np.broadcast_to(np.eye(2), (n, 2, 2)).copy()
    if "rotate" in kinds:
        a = np.deg2rad(rng.uniform(-mag["rotate"], mag["rotate"], n))
        c, s = np.cos(a), np.sin(a)
        m = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], 1) @ m
    if "scale" in kinds:  # the source grid shrinks by the factor the digit grows
        f = 1.0 / (1.0 + rng.uniform(-mag["scale"], mag["scale"], n))
        m = m * f[:, None, None]
    if "shear" in kinds:
        sh = np.zeros((n, 2, 2))
        sh[:, 0, 0] = sh[:, 1, 1] = 1.0
        sh[:, 1, 0] = rng.uniform(-mag["shear"], mag["shear"], n)  # column += shear * row
        m = sh @ m
    return m


def _blur_matrix(size: int, grid: int, sigma: float) -> np.ndarray:
    """(size, grid): Gaussian weights spreading ``grid`` evenly spaced points over ``size``
    pixels; rows sum to 1, so a field of unit noise keeps a comparable amplitude."""
    pos = np.linspace(0, size - 1, grid)
    d = np.arange(size)[:, None] - pos[None, :]
    u = np.exp(-0.5 * (d / (sigma * size)) ** 2)
    return u / u.sum(axis=1, keepdims=True)


class Augmenter:
    """Distorts batches of uint8 or float images (N, H, W) -> float32 (N, H, W), pixel scale
    kept (0..255). Work buffers are kept between calls of the same batch shape."""

    def __init__(self, kinds, magnitudes=None):
        self.kinds = parse_kinds(kinds)
        self.magnitudes = {**MAGNITUDES, **(magnitudes or {})}
        self._shape = None

    def _buffers(self, shape) -> None:
        if self._shape == shape:
            return
        n, h, w = shape
        self._shape = shape
        self.padded = np.zeros((n, h + 2, w + 2), np.float32)  # zero border of one pixel
        rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
        self.centred = np.stack([rows - (h - 1) / 2, cols - (w - 1) / 2])  # (2, H, W)
        self.centre = np.array([(h - 1) / 2, (w - 1) / 2])
        self.base = (np.arange(n) * (h + 2) * (w + 2))[:, None, None]  # (N, 1, 1)
        self.blur = (_blur_matrix(h, ELASTIC_GRID, ELASTIC_SIGMA),
                     _blur_matrix(w, ELASTIC_GRID, ELASTIC_SIGMA))
        # the blur of unit noise has std sqrt(sum bh^2 * sum bw^2) at each pixel
        spread = np.sqrt(np.outer((self.blur[0] ** 2).sum(1), (self.blur[1] ** 2).sum(1)))
        self.field_scale = self.magnitudes["elastic"] / spread  # (H, W)
        self.out = np.empty(shape, np.float32)

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.kinds:
            return images
        if self.kinds == ("shift",):
            return shift_images(images, rng, int(round(self.magnitudes["shift"])))
        n, h, w = images.shape
        self._buffers(images.shape)
        m = affine_matrices(n, rng, self.kinds, self.magnitudes)
        # source coordinates (N, 2, H, W): M @ (p - c) + c
        src = np.einsum("nij,jhw->nihw", m, self.centred)
        src += self.centre[None, :, None, None]
        if "shift" in self.kinds:
            s = self.magnitudes["shift"]
            src += rng.uniform(-s, s, (n, 2))[:, :, None, None]
        if "elastic" in self.kinds:
            noise = rng.standard_normal((n, 2, ELASTIC_GRID, ELASTIC_GRID))
            bh, bw = self.blur
            field = np.einsum("hg,nkgq,wq->nkhw", bh, noise, bw)  # separable blur
            src += field * self.field_scale  # (H, W): each pixel's std becomes ``elastic``
        return self.resample(images, src[:, 0], src[:, 1])

    def resample(self, images: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Bilinear samples of ``images`` (N, H, W) at rows ``ys`` and columns ``xs`` (each
        (N, H, W), in pixels of the input); zero outside the image."""
        n, h, w = images.shape
        self._buffers(images.shape)
        pad = self.padded
        pad[:, 1:-1, 1:-1] = images
        # padded coordinates: the border row/column 0 and h+1 (w+1) hold zeros
        y = np.clip(ys + 1.0, 0.0, h + 1.0)
        x = np.clip(xs + 1.0, 0.0, w + 1.0)
        y0 = np.minimum(y.astype(np.intp), h)  # y >= 0, so astype floors
        x0 = np.minimum(x.astype(np.intp), w)
        fy = (y - y0).astype(np.float32)
        fx = (x - x0).astype(np.float32)
        flat = pad.reshape(-1)
        i = self.base + y0 * (w + 2) + x0  # (N, H, W) index of the top-left neighbour
        top = flat[i] * (1 - fx) + flat[i + 1] * fx
        bottom = flat[i + w + 2] * (1 - fx) + flat[i + w + 3] * fx
        out = self.out
        np.multiply(top, 1 - fy, out=out)
        out += bottom * fy
        return out
