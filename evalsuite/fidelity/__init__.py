"""What "the same result" means: the tolerance policy, prompt fingerprints, and `evalsuite verify`."""
