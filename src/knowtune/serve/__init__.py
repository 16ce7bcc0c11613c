"""Serving the trained model: terminal chat (and later an OpenAI-compatible server)."""
