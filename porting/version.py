"""porting's version, in a module of its own: the converters stamp it into every file they write without
importing the package's API (porting/__init__.py reaches porting.api)."""

__version__ = "0.2.0"
