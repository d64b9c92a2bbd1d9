"""vqalab: reproducible visual question answering experiments as a DVC pipeline."""

__version__ = "0.1.0"
