"""The one training loop for every family, and its multi-process (DDP) launch."""
