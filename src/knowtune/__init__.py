"""knowtune: fine-tune a language model on an organisation's own data, and show whether it worked."""

__version__ = "0.1.0"
