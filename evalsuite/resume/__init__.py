"""Resuming interrupted runs: the run's claim on its output directory, the store of answered requests,
the fingerprint that decides whether stored answers may be reused, and the LM wrapper that uses them."""
