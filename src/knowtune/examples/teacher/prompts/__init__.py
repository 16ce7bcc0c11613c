"""The prompts: packaged defaults, files users edit, and filling in their placeholders."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from ....config import ConfigError

NAMES = ("qa", "judge", "closed_book", "paraphrase")
# The placeholders each prompt cannot do without.
REQUIRED = {"qa": ("{passage}",), "judge": ("{question}", "{answer}", "{passage}"), "closed_book": ("{question}",),
            "paraphrase": ("{question}",)}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def default_prompt(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"no default prompt {name!r}; there are: {', '.join(NAMES)}")
    return files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


def load_prompt(path: Path | None, name: str) -> str:
    """The user's prompt file when given, else the default; checked for its required placeholders."""
    if path is None:
        return default_prompt(name)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{name} prompt {path}: no such file")
    text = path.read_text(encoding="utf-8")
    missing = [p for p in REQUIRED[name] if p not in text]
    if missing:
        raise ConfigError(f"{name} prompt {path}: missing placeholder {', '.join(missing)}")
    return text


def teacher_prompts(teacher, judge, preference: bool) -> dict[str, str]:
    """The prompt texts each teacher step sends: "qa"; "judge" with a judge; "closed_book" (the answer without
    the passage, a preference pair's rejected one) with preference pairs; "paraphrase" (rewordings of each
    kept question) with `teacher.paraphrases`."""
    texts = {"qa": load_prompt(teacher.prompt, "qa")}
    if judge is not None:
        texts["judge"] = load_prompt(judge.prompt, "judge")
    if preference:
        texts["closed_book"] = default_prompt("closed_book")
    if teacher.paraphrases:
        texts["paraphrase"] = default_prompt("paraphrase")
    return texts


def render(template: str, **values: object) -> str:
    # Not str.format: a prompt shows its JSON shape in braces, and a passage of code is full of
    # them. Only known placeholders are filled, in one pass, so braces in a passage stay as they are.
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)
