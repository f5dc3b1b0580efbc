"""Speed only: work buffers, BLAS threading, packed pooling masks and fused passes.

Nothing here is new maths: every function computes what ``convscope.engine.net`` defines, and
the tests hold them equal (float64, 1e-10). A learner can skip this package entirely.
"""
