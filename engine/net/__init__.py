"""The network, as a learner reads it, in this order:

1. ``notes.py``  — the design notes in code: the seed network with plain loops, one pixel and
   one filter at a time, forward and backward. Start here.
2. ``layers.py`` — the same maths vectorised, one layer per class: ``forward`` keeps a cache,
   ``backward`` fills ``grads``.
3. ``model.py``  — presets and a ``Model`` that chains the layers.
4. ``optim.py``  — SGD, the only code that changes weights.
5. ``train.py``  — the ``Trainer``: batches, steps, epochs, reports.

Speed-only code lives apart, in ``convscope.engine.fast``, held equal to these files by tests.
"""
