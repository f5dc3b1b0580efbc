"""Augmentation: shapes and dtype, identity at magnitude 0, known moves of known pixels, one
seed one set of images, and the Trainer drawing it from its own saved generator."""
import numpy as np
import pytest

from convscope.engine.data.augment import (
    KINDS,
    Augmenter,
    affine_matrices,
    parse_kinds,
    shift_images,
)
from convscope.engine.net.model import Model, build_config
from convscope.engine.net.train import Trainer

ZERO = {"shift": 0.0, "rotate": 0.0, "scale": 0.0, "shear": 0.0, "elastic": 0.0}


def digits(n=6, seed=0):
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 6:22, 10:18] = rng.integers(100, 256, (n, 16, 8))
    return images


def test_parse_kinds():
    assert parse_kinds("elastic, shift") == ("shift", "elastic")  # one order
    assert parse_kinds("none") == parse_kinds("") == parse_kinds(False) == ()
    assert parse_kinds(True) == ("shift",)  # a boolean from before the kinds: shifts
    assert parse_kinds(["rotate", "scale"]) == ("rotate", "scale")
    with pytest.raises(ValueError, match="unknown augmentation 'zoom'"):
        parse_kinds("shift,zoom")


@pytest.mark.parametrize("kinds", [("shift",), ("rotate",), ("scale",), ("shear",),
                                   ("elastic",), KINDS])
def test_shapes_dtype_and_range(kinds):
    images = digits()
    out = Augmenter(kinds)(images, np.random.default_rng(0))
    assert out.shape == images.shape
    assert out.dtype == (np.uint8 if kinds == ("shift",) else np.float32)
    assert out.min() >= 0 and out.max() <= 255
    assert not np.array_equal(out, images)  # something moved


def test_zero_magnitudes_give_the_images_back():
    images = digits()
    out = Augmenter(KINDS, ZERO)(images, np.random.default_rng(1))
    np.testing.assert_allclose(out, images, atol=1e-4)
    assert (affine_matrices(3, np.random.default_rng(0), KINDS, ZERO) == np.eye(2)).all()


def test_no_kinds_return_the_images_untouched():
    images = digits()
    assert Augmenter("none")(images, np.random.default_rng(0)) is images


def test_a_quarter_turn_moves_a_known_pixel():
    """Rotating by 90 degrees maps the source pixel (row 3, column 20) to (20, 24): about the
    centre (13.5, 13.5) the offset (-10.5, +6.5) turns into (+6.5, +10.5)."""
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 3, 20] = 200
    aug = Augmenter(("rotate",))
    rows, cols = np.mgrid[0:28, 0:28].astype(float)
    m = np.array([[0.0, -1.0], [1.0, 0.0]])  # source = M @ (p - c) + c
    c = 13.5
    ys = m[0, 0] * (rows - c) + m[0, 1] * (cols - c) + c
    xs = m[1, 0] * (rows - c) + m[1, 1] * (cols - c) + c
    out = aug.resample(image, ys[None], xs[None])
    assert out[0, 20, 24] == pytest.approx(200) and np.count_nonzero(out) == 1


def test_a_random_rotation_turns_the_image_about_its_centre():
    """Each matrix drawn is a rotation within +-12 degrees; bilinear sampling keeps a
    centred disc's mass."""
    m = affine_matrices(500, np.random.default_rng(3), ("rotate",))
    angles = np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0]))
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", m, m), np.broadcast_to(np.eye(2),
                               m.shape), atol=1e-12)
    assert np.abs(angles).max() <= 12 and np.abs(angles).max() > 11
    yy, xx = np.mgrid[0:28, 0:28]
    disc = (((yy - 13.5) ** 2 + (xx - 13.5) ** 2) < 60).astype(np.uint8)[None] * 100
    out = Augmenter(("rotate",))(disc, np.random.default_rng(0))
    assert out.sum() == pytest.approx(disc.sum(), rel=0.02)


def test_a_whole_pixel_shift_moves_a_known_pixel():
    """The window taken from the padded image starts at (dy, dx) in 0..4: the pixel at
    (10, 10) lands at (10 + 2 - dy, 10 + 2 - dx)."""
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 10, 10] = 255
    draws = np.random.default_rng(0)
    dy, dx = draws.integers(0, 5, 1)[0], draws.integers(0, 5, 1)[0]
    out = shift_images(image, np.random.default_rng(0), 2)
    assert np.argwhere(out[0]).tolist() == [[10 + 2 - dy, 10 + 2 - dx]]


def test_elastic_field_is_smooth_and_of_its_size():
    """Neighbouring pixels move almost together; the field's spread is the magnitude."""
    aug = Augmenter(("elastic",), {"elastic": 1.5})
    image = np.zeros((200, 28, 28), np.uint8)
    aug(image, np.random.default_rng(0))
    rng = np.random.default_rng(5)
    noise = rng.standard_normal((200, 2, 5, 5))
    bh, bw = aug.blur
    field = np.einsum("hg,nkgq,wq->nkhw", bh, noise, bw) * aug.field_scale
    assert field.std() == pytest.approx(1.5, rel=0.15)
    step = np.abs(np.diff(field, axis=-1)).mean()
    assert step < 0.3 * np.abs(field).mean()


def test_one_seed_one_set_of_images():
    images = digits()
    a = Augmenter(KINDS)(images, np.random.default_rng(7)).copy()
    b = Augmenter(KINDS)(images, np.random.default_rng(7))
    c = Augmenter(KINDS)(images, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_the_trainer_draws_augmentation_from_its_saved_generator():
    images, labels = digits(40), np.arange(40) % 10
    trainer = Trainer(Model(build_config("seed"), 0), images, labels, lr=0.01, batch_size=8,
                      momentum=0.9, seed=3, augment=KINDS)
    for _ in range(3):
        trainer.step()
    state = trainer.get_state()
    assert state["meta"]["augment"] == list(KINDS)
    expected = [trainer.step().loss for _ in range(7)]  # crosses an epoch end
    fresh = Trainer(Model(build_config("seed"), 5), images, labels, seed=9)
    fresh.set_state(state)
    assert fresh.augment == KINDS
    assert [fresh.step().loss for _ in range(7)] == expected
