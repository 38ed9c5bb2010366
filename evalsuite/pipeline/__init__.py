"""The evaluation pipeline: prepare requests, answer them through a backend, score (evaluate), and
write a complete run directory (run, rundir)."""
