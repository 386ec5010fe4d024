"""The paddleclas source library."""
