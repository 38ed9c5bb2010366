"""Checks that catch bad input before it costs model time or quietly changes a score."""
