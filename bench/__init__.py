"""Benchmarks: engine speed (bench.engine), GUI responsiveness (bench.gui), drawing latency
(bench.draw). Speed is measured here, never asserted in tests."""
