"""Speed only: work buffers, BLAS threading, packed pooling masks and fused passes.

Nothing here is new maths: every function computes what ``convscope.engine.net`` defines, and
the tests hold them equal (float64, 1e-10). A learner can skip this package entirely.
"""


def plan(model):
    """The fast pass for ``model`` when there is one (else None): ``fused.FusedNet`` for the
    design notes' one-conv family, ``stack.StackNet`` for deeper conv stacks."""
    from convscope.engine.fast import fused, stack  # here: both import engine.net.layers
    if fused.supports(model):
        return fused.FusedNet(model)
    if stack.supports(model):
        return stack.StackNet(model)
    return None
