"""The package's version, alone in a module of the ground floor so that any module may import it."""

__version__ = "0.1.0"
