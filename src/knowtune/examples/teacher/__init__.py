"""Question-answer pairs written by a teacher model behind any OpenAI-compatible endpoint.

    generate(chunks, docs, teacher, judge, cache_dir)   pairs (and rewordings), rejections with reasons, usage
    dry_run(chunks, docs, teacher, count_tokens)        what that would send and cost, one by one and as a batch
    default_prompt("qa" | "judge" | "closed_book" | "paraphrase")   the packaged prompts, to copy and edit
    structured_reply / ask_structured                   a reply in a JSON schema the server enforces when it
                                                        can (structured.py), for any step that needs one
"""

from .estimate import dry_run
from .generate import TeacherResult, generate
from .prompts import default_prompt
from .structured import ask_structured, structured_reply

__all__ = ["TeacherResult", "generate", "dry_run", "default_prompt", "structured_reply", "ask_structured"]
