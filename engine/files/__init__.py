"""Files out and back in: model files (``.npz``, never unpickled) and atomic writes."""
