"""The data plane: a fast, safe model server for the Open Inference Protocol v2."""

__version__ = "0.1.0"
