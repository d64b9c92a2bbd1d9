"""Model families: one module per family, the registry (name -> module), what they share (the interface, the fusion classifier, LoRA, the question prior) and checkpoints."""
