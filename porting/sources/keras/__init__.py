"""The keras source library."""
