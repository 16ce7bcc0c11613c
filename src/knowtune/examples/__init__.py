"""The stages of `knowtune build` (the package was named build/, which reads as a build output to people
and to Python's .gitignore): the tokenizer, then documents become token-bounded chunks, and chunks become
training examples."""

from __future__ import annotations

from .chunks import run_chunk
from .stage import run_examples, teacher_dry_run
from .tokenizer import run_tokenizer

__all__ = ["run_tokenizer", "run_chunk", "run_examples", "teacher_dry_run"]
