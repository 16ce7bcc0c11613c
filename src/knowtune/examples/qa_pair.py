"""One question–answer pair, and the wording every extractor shares.

The wording lives here so a symbol in Python, Go or Java is asked about in the
same words: a model that learns one phrasing per kind of fact can be tested on
it, and the knowledge split can tell two questions about one symbol apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(slots=True)
class QAPair:
    question: str
    answer: str
    about: str  # the symbol, heading or file the pair is about
    rule: str  # "docstring", "signature", "heading", "change_reason"
    span: tuple[int, int] | None  # character offsets in the document text the answer comes from
    # what phrasings.py words the fact with besides the above: a signature's params and returns, a page's
    # title, a change's files and name
    fields: dict = field(default_factory=dict)


def does_question(name: str, path: str) -> str:
    return f"What does `{name}` in {path} do?"


def arguments_question(name: str, path: str) -> str:
    return f"What arguments does `{name}` in {path} take?"


def signature_pair(name: str, path: str, params: list[str], returns: str | None, span: tuple[int, int]) -> QAPair:
    return QAPair(arguments_question(name, path), arguments_answer(name, path, params, returns), name, "signature",
                  span, {"params": params, "returns": returns})


def arguments_answer(name: str, path: str, params: list[str], returns: str | None) -> str:
    takes = f"takes ({', '.join(params)})" if params else "takes no arguments"
    tail = f" and returns {returns}" if returns else ""
    return f"`{name}` in {path} {takes}{tail}."


def one_line(source: str) -> str:
    # A parameter written over several lines reads as one in a sentence.
    return re.sub(r"\s*\n\s*", " ", source.strip())


def char_offsets(text: str):
    """A function from UTF-8 byte offsets (what parsers report) to character offsets in `text`."""
    if text.isascii():
        return lambda b: b
    data = text.encode("utf-8", "surrogatepass")
    return lambda b: len(data[:b].decode("utf-8", "surrogatepass"))
