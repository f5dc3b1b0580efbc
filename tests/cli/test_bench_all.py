"""``python -m convscope.bench``'s README rewriting, on a copy of bench/README.md with made-up
results:
every generated section is replaced between its markers and the hand-written text is kept.
(Speed itself is never asserted.)"""
from __future__ import annotations

import pytest

from convscope.bench import __main__ as bench_all
from convscope.bench import draw, engine, gui
from convscope.bench.readme import README, markers, replace_section

SECTIONS = ("engine bench", "gui bench", "draw bench", "memory bench")


def fake_engine() -> dict:
    return {"train_samples_per_sec": {"engine": {"1": 111, "8": 222, "32": 333, "128": 444},
                                      "reference": {"1": 0.5}, "torch": None},
            "ratios": {"engine/reference": {"1": 222.0}},
            "infer_single_us": {"engine": 1.5, "reference": 9.0},
            "infer_10k_ms": {"engine": 7.5, "reference": 90.0}, "epoch_60k_batch32_s": 0.5,
            "rounds": 1, "quick": True, "first_loss": {"engine": 2.3},
            "targets_met": {"engine/reference at batch 1 >= 300": False,
                            "epoch of 60,000 at batch 32 < 1 s": True},
            "machine": {"cpus": 2, "cpu": "fake cpu", "python": "3", "numpy": "2",
                        "load_average": 0.1, "load_average_end": 0.2, "blas": [],
                        "torch": None}}


def fake_gui() -> dict:
    result = {"batch": 32, "rounds": 2, "round_s": 0.5, "size": "800x600", "quick": True,
              "headless": 1000, "app": 650, "ratio": 0.65, "ratio_range": [0.6, 0.7],
              "latency_ms": {"median": 1.25, "p99": 31.5, "max": 40.0, "ticks": 90},
              "repaints_per_s": {"snapshot": 9.5, "curves": 7.25, "feature_maps": 9.5},
              "gui_busy": 0.125, "close_ms": 2.0, "worker_running_after_close": False,
              "launch_s": {"shown": 0.45, "first_snapshot": 0.5}, "blas": "fake blas",
              "blas_env": {}, "load_average": [0.5, 0.6]}
    result["targets_met"] = {name: bool(test(result)) for name, test in gui.TARGETS.items()}
    return result


def fake_draw() -> list[dict]:
    f = {"median": 2.5, "p95": 3.5, "max": 4.5}
    return [{"where": where, "preset": preset, "pixel_ratio": 1.0, "ink": "280x280",
             "strokes": 7, "end_to_end_ms": f, "mouse_move_ms": f, "training_steps": None,
             "parts_ms": dict.fromkeys(("ink_array", "preprocess", "forward", "saliency"), f)}
            for where, preset in (("alone", "deep"), ("while training", "seed"))]


def outside(text: str) -> list[str]:
    """The text between the generated sections."""
    parts = []
    for name in SECTIONS:
        begin, end = markers(name)
        head, rest = text.split(begin)
        parts.append(head)
        text = rest.split(end, 1)[1]
    return [*parts, text]


@pytest.fixture
def readme(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(README.read_text())
    return path


@pytest.mark.slow
def test_every_section_is_replaced_and_the_rest_kept(readme):
    before = readme.read_text()
    for _ in range(2):  # a second run replaces, never appends
        engine.write_readme(fake_engine(), readme)
        gui.write_readme(fake_gui(), readme)
        draw.write_readme(fake_draw(), readme)
        bench_all.output_section("memory", "python -m convscope.bench.memory", "peak 123 MB\n",
                                 readme)
    text = readme.read_text()
    for name in SECTIONS:
        begin, end = markers(name)
        assert text.count(begin) == 1 and text.count(end) == 1
        assert text.index(begin) < text.index(end)
    assert outside(text) == outside(before)
    assert "| engine (NumPy) | 111 | 222 | 333 | 444 |" in text
    assert "| event-loop latency while training, 99th percentile | **31.5 ms** | " \
           "< 30 ms: missed |" in text
    assert ("| training states painted per second (probe digit, feature maps, prediction) | "
            "**9.5** | >= 25: missed |") in text
    assert "| launch to main window shown | **0.45 s** | < 2 s: met |" in text
    assert "| repaints per second: loss curves | 7.25 |" in text
    assert "- Repaints missed:" in text and "- Latency missed:" in text
    assert "While training, the window keeps" in text  # the fixed prose around the table
    assert "| alone | `deep` | 7 | **2.50 / 3.50 / 4.50** |" in text
    assert "peak 123 MB" in text


def test_missing_markers_append_a_section():
    text = replace_section("# Benchmarks\n\nHand-written.\n", "gui bench", ["new"])
    assert text == ("# Benchmarks\n\nHand-written.\n\n<!-- gui bench: begin -->\nnew\n"
                    "<!-- gui bench: end -->\n")
    again = replace_section(text + "\nAfter.\n", "gui bench", ["newer"])
    assert again == text.replace("\nnew\n", "\nnewer\n") + "\nAfter.\n"


def test_only_the_named_section_changes():
    text = ("a\n<!-- x: begin -->\nold x\n<!-- x: end -->\nb\n"
            "<!-- y: begin -->\nold y\n<!-- y: end -->\nc\n")
    assert replace_section(text, "y", ["new y"]) == text.replace("old y", "new y")


@pytest.mark.slow
def test_memory_growth_compares_the_halves_after_epoch_1():
    from convscope.bench.memory import growth_between_halves

    swinging = [140.0, 160.0, 141.0, 162.0, 145.0, 161.0, 162.5, 140.5, 162.0]
    leaking = [140.0 + 3 * k for k in range(9)]
    assert growth_between_halves(swinging) == pytest.approx(0.5)
    assert growth_between_halves(leaking) == pytest.approx(12.0)


def test_a_gui_run_at_batch_1_has_its_own_section(readme):
    gui.write_readme(fake_gui(), readme)
    one = {**fake_gui(), "batch": 1, "headless": 30000, "app": 21000, "ratio": 0.7}
    gui.write_readme(one, readme)
    gui.write_readme(one, readme)
    text = readme.read_text()
    begin, end = markers("gui bench batch 1")
    assert text.count(begin) == 1 and text.count(end) == 1
    section = text[text.index(begin):text.index(end)]
    assert "--batch 1 --write-readme" in section and "| headless Trainer, samples/s | 30,000 |" \
        in section
    main = text[text.index(markers("gui bench")[0]):text.index(markers("gui bench")[1])]
    assert "| headless Trainer, samples/s | 1,000 |" in main
