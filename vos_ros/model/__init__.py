"""The segmentation network's contract (numpy, no torch) and, in submodules, its PyTorch code."""
