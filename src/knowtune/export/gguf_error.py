"""The one error GGUF export raises for a model it cannot write faithfully."""


class GGUFError(ValueError):
    """A model folder GGUF export refuses, with a one-line reason: better no file than one that degrades silently."""
