"""``python -m convscope.bench.breakdown`` runs on a conv stack at a batch the training pass
would split in two, names every phase, keeps the pass on one thread while it measures and
leaves that setting as it found it. (Speed itself is never asserted.)"""
from __future__ import annotations

from convscope.bench import breakdown
from convscope.engine.fast import pair


def test_breakdown_lists_every_phase_of_a_split_batch(capsys):
    assert breakdown.main(["--preset", "lenet", "--filters", "4", "--batch", "32"]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("| ") and "ms" not in line]
    names = [row.split(" | ")[0][2:] for row in rows]
    assert names[0].startswith("first conv's patches")
    assert any(n.startswith("conv2: input gradient, 25 products") for n in names)
    assert names[-1].startswith("whole step")
    assert all(float(row.split(" | ")[1]) > 0 for row in rows)
    assert pair.use_pair(True) is True  # the helper was back on afterwards


def test_phases_leave_the_helper_as_they_found_it():
    pair.use_pair(False)
    try:
        assert len(breakdown.phases("lenet", 4, 32)) > 5
        assert pair.use_pair(False) is False
    finally:
        pair.use_pair(True)
