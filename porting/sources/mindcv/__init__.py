"""The mindcv source library."""
