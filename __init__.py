"""ConvScope: watch a convolutional neural network, written from scratch in NumPy, learn to
read handwritten digits.

One import name: ``convscope``. ``convscope.engine`` is the network in pure NumPy (start with
``convscope.engine.net.notes``), ``convscope.visualizer`` the PyQt5 app, ``convscope.cli`` the
headless commands, ``convscope.bench`` the benchmarks.
"""
from importlib import metadata

try:
    __version__ = metadata.version("convscope")
except metadata.PackageNotFoundError:  # pragma: no cover - not installed at all
    __version__ = "0+unknown"
