"""Tools on top of the network: the arithmetic of one cell (explain), gradient checks,
saliency, metrics and the timeline of training states."""
