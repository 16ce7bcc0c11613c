"""Question-answer pairs written by a teacher model behind any OpenAI-compatible endpoint.

    generate(chunks, docs, teacher, judge, cache_dir)   pairs, rejections with reasons, usage
    dry_run(chunks, docs, teacher, count_tokens)        what that would send and cost
    default_prompt("qa" | "judge" | "closed_book")      the packaged prompts, to copy and edit
"""

from .estimate import dry_run
from .generate import TeacherResult, generate
from .prompts import default_prompt

__all__ = ["TeacherResult", "generate", "dry_run", "default_prompt"]
