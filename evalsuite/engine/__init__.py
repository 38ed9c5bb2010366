"""Model engines: what a backend must answer, and the backends that answer it."""
