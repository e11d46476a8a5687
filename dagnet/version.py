"""dagnet's version (the facade re-exports it as dagnet.__version__)."""
__version__ = "0.1.0"
