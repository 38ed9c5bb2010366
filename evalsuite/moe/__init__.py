"""Mixture-of-experts router statistics: recorded during a run (recorder), read back and summarised
(stats), drawn (plots)."""
