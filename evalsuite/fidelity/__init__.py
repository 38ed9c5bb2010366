"""What "the same result" means: the tolerance policy, prompt fingerprints, and `evalsuite verify`."""

# The policy's log-likelihood tolerance in nats (here, so that the CLI's help text needs nothing heavy).
DEFAULT_EPSILON = 1e-4
