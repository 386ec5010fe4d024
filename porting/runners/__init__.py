"""Runtimes: one per deployment framework, Polygraphy-style (the source libraries' runners: porting.sources)."""
