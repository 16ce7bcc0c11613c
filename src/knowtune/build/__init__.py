"""Build: the tokenizer, then documents become token-bounded chunks, and chunks become training examples."""

from __future__ import annotations

from pathlib import Path

from .chunks import run_chunk
from .examples import run_examples, teacher_dry_run
from .tokenizer import run_tokenizer

__all__ = ["run_tokenizer", "run_chunk", "run_examples", "teacher_dry_run", "load_tokenizer"]


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)
