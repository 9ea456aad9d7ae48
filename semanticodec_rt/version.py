"""The package version (its own module, so that low layers such as the bitstream can name it)."""

__version__ = "0.1.0"
