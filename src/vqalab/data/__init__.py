"""Data sets: one module per source, the shared record schema, answer normalisation, splits, vocabulary and the processed folders training reads."""
