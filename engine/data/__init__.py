"""Data in: IDX files, the embedded digits, verified downloads, drawings and image files turned
into 28x28 MNIST-style digits. Every problem is a one-line ``DataError``."""
