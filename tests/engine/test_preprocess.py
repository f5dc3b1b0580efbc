"""MNIST-style preprocessing of drawn or loaded digits, and reading image files."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from convscope.engine import Model, Trainer, build_config, evaluate
from convscope.engine.data.datasets import load_mini
from convscope.engine.data.idx import DataError
from convscope.engine.data.preprocess import load_image, preprocess_digit

SEVEN = [(0.05, 0.05), (0.95, 0.05), (0.45, 0.95)]  # a "7" in a unit box, plus a bar
BAR = [(0.3, 0.5), (0.8, 0.5)]


def _canvas(x0, y0, size, width, shape=(280, 280)):
    """White page (H, W) uint8 with a dark "7" drawn in the box (x0, y0, size)."""
    img = Image.new("L", shape[::-1], 255)
    draw = ImageDraw.Draw(img)
    for line in (SEVEN, BAR):
        draw.line([(x0 + u * size, y0 + v * size) for u, v in line], fill=0, width=width,
                  joint="curve")
    return np.asarray(img)


def _extent(digit):
    rows = np.flatnonzero(digit.any(axis=1))
    cols = np.flatnonzero(digit.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def _centre(digit):
    d = digit.astype(np.float64)
    r = np.arange(28)
    return d.sum(axis=1) @ r / d.sum(), d.sum(axis=0) @ r / d.sum()


@pytest.mark.slow
def test_small_corner_stroke_matches_large_middle_stroke():
    small = preprocess_digit(_canvas(8, 8, 60, 6))
    large = preprocess_digit(_canvas(40, 40, 200, 20))
    for digit in (small, large):
        assert digit.dtype == np.uint8 and digit.shape == (28, 28) and digit.max() == 255
        assert max(_extent(digit)) in (19, 20)
        cy, cx = _centre(digit)
        assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert abs(_extent(small)[0] - _extent(large)[0]) <= 1
    assert abs(_extent(small)[1] - _extent(large)[1]) <= 1
    assert np.abs(small.astype(int) - large.astype(int)).mean() < 8
    assert np.corrcoef(small.ravel(), large.ravel())[0, 1] > 0.95


@pytest.mark.slow
def test_both_polarities_and_value_ranges_agree():
    page = _canvas(30, 50, 150, 14, shape=(300, 260))
    expected = preprocess_digit(page)
    np.testing.assert_array_equal(preprocess_digit(255 - page), expected)
    np.testing.assert_array_equal(preprocess_digit(page / 255.0), expected)
    np.testing.assert_array_equal(preprocess_digit(page.astype(np.float32)), expected)
    np.testing.assert_array_equal(preprocess_digit(page.astype(np.uint16) * 257), expected)


def test_aspect_ratio_is_kept():
    page = np.zeros((280, 280), np.uint8)
    page[40:240, 130:150] = 255  # a "1": 200 x 20
    digit = preprocess_digit(page)
    assert _extent(digit) == (20, 2)
    assert abs(_centre(digit)[1] - 14) <= 0.5


def test_mnist_digit_stays_mnist(official_test_set):
    images, _ = official_test_set
    diffs = [np.abs(preprocess_digit(x).astype(int) - x).mean() for x in images[:200]]
    assert np.mean(diffs) < 4  # grey levels out of 255


@pytest.mark.parametrize("make", [
    lambda: np.zeros((280, 280), np.uint8),
    lambda: np.full((280, 280), 255, np.uint8),
    lambda: np.full((50, 70), 0.4),
    lambda: (np.random.default_rng(0).normal(200, 3, (280, 280))).clip(0, 255),
    lambda: np.pad(np.full((2, 2), 255, np.uint8), 139),  # a speck on a 280x280 canvas
    lambda: np.pad(np.full((10, 10), 255, np.uint8), 135),  # a dot under 4% of the side
])
@pytest.mark.slow
def test_blank_or_nearly_blank_is_none(make):
    assert preprocess_digit(make()) is None


@pytest.mark.slow
def test_noisy_paper_with_a_digit_is_not_blank():
    rng = np.random.default_rng(1)
    page = (_canvas(40, 40, 200, 20).astype(np.float64) * 0.8 + rng.normal(30, 4, (280, 280)))
    digit = preprocess_digit(page.clip(0, 255))
    assert digit is not None and max(_extent(digit)) in (19, 20)


@pytest.mark.parametrize("bad", [np.zeros((3, 28, 28)), np.zeros(28), np.zeros((0, 5)),
                                 np.array([[np.nan, 1.0], [0.0, 0.0]]),
                                 np.array([["a", "b"]])])
@pytest.mark.slow
def test_bad_arrays_raise(bad):
    with pytest.raises(DataError):
        preprocess_digit(bad)


@pytest.fixture(scope="module")
def trained_model():
    """The "deep" network trained for one epoch on the embedded digits (a few seconds)."""
    ds = load_mini()
    model = Model(build_config("deep"), seed=0)
    trainer = Trainer(model, ds.x_train, ds.y_train, lr=0.05, momentum=0.9, batch_size=32,
                      seed=0)
    trainer.fit(1)
    return model


def test_upscaled_inverted_digits_are_classified_like_the_originals(official_test_set,
                                                                     trained_model):
    images, labels = official_test_set
    images, labels = images[:500], labels[:500]
    pages = []
    for i, x in enumerate(images):
        page = np.full((360, 330), 255, np.uint8)  # white page, digit 10x, dark ink
        top, left = 10 + (i % 5) * 10, 5 + (i % 7) * 5
        page[top:top + 280, left:left + 280] = 255 - np.kron(x, np.ones((10, 10), np.uint8))
        pages.append(preprocess_digit(page))
    _, accuracy, original = evaluate(trained_model, images, labels)
    _, _, processed = evaluate(trained_model, np.stack(pages), labels)
    assert accuracy > 0.9
    agreement = (original.argmax(axis=1) == processed.argmax(axis=1)).mean()
    assert agreement >= 0.95


@pytest.mark.slow
def test_load_image_png_jpeg_and_transparency(tmp_path):
    page = _canvas(40, 40, 200, 20)
    Image.fromarray(page).save(tmp_path / "gray.png")
    Image.fromarray(page).convert("RGB").save(tmp_path / "color.jpg", quality=95)
    rgba = np.zeros((280, 280, 4), np.uint8)  # black ink on a transparent background
    rgba[..., 3] = 255 - page
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    gray = load_image(tmp_path / "gray.png")
    assert gray.shape == (280, 280) and gray.dtype == np.float32
    np.testing.assert_allclose(gray, page / 255.0, atol=1e-6)
    expected = preprocess_digit(page)
    for name in ("gray.png", "color.jpg", "clear.png"):
        image = load_image(tmp_path / name)
        assert image.shape == (280, 280) and 0 <= image.min() and image.max() <= 1
        digit = preprocess_digit(image)
        assert np.abs(digit.astype(int) - expected).mean() < 3, name


@pytest.mark.slow
def test_load_image_sixteen_bit(tmp_path):
    page = (255 - _canvas(40, 40, 200, 20)).astype(np.uint16) * 257
    Image.fromarray(page).save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png")
    assert image.max() == pytest.approx(1.0) and image.min() == 0.0
    assert preprocess_digit(image) is not None


@pytest.mark.slow
def test_load_image_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture\n")
    Image.fromarray(_canvas(40, 40, 200, 20)).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:300])
    cases = {"notes.txt": "not an image", "cut.png": "cannot read the image",
             "missing.png": "file not found", "": "folder"}
    for name, expected in cases.items():
        path = tmp_path / name
        with pytest.raises(DataError) as info:
            load_image(path)
        message = str(info.value)
        assert expected in message and str(path) in message and "\n" not in message
