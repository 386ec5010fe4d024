"""The timm source library."""
