"""MindSpore building blocks shared by every architecture (porting.models.layers).

The architectures themselves live in porting.archs, one package per family, with their registry.
"""
