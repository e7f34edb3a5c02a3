"""The package version, in a module of its own so that any layer can import it without
importing the package's ``__init__`` (which imports those layers)."""

__version__ = "0.1.0"
