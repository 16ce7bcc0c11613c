"""Every fact in several wordings: a model learns a fact it is asked about in more than one way.

One question-answer pair per fact was far too few for the FAQ bot of ../shared/seeds/001; Ovadia et al.
(2023) found accuracy on new facts rises with the number of paraphrases trained, and Allen-Zhu and Li
(2023, "Physics of Language Models 3.1") that a model answers questions about a fact reliably only when it
saw the fact in several phrasings. Without a model to paraphrase, the wordings here are templates per kind
of fact, filled from what the document says: nothing is invented, only the sentence around it changes.

`phrasings(pair, n)` gives n wordings to train, then one spare: a question worded unlike the n, which the
curate stage may hold out to measure whether the model answers a trained fact asked another way.
"""

from __future__ import annotations

from dataclasses import dataclass

from .qa_pair import QAPair


@dataclass(frozen=True, slots=True)
class Phrasing:
    question: str
    answer: str
    follows: str | None = None  # a file the question names, for the split (diff_sections.py)


def phrasings(pair: QAPair, path: str, n: int) -> list[Phrasing]:
    """n + 1 wordings of the pair's fact, the pair's own first; the last is the spare. Questions never repeat,
    so a fact with fewer templates than n + 1 gets fewer phrasings."""
    questions, answers = _WORDINGS[pair.rule](pair, path)
    out, seen = [], set()
    for i, (question, follows) in enumerate(questions):
        if question in seen:
            continue
        seen.add(question)
        out.append(Phrasing(question, answers[len(out) % len(answers)], follows))
        if len(out) == n + 1:
            break
    # the spare is asked another way but answered as the fact is first stated: it tests the question, not
    # the answer's wording
    if len(out) > 1:
        out[-1] = Phrasing(out[-1].question, answers[0], out[-1].follows)
    return out


def _docstring(pair: QAPair, path: str) -> tuple[list, list[str]]:
    text, name = pair.answer, pair.about
    if name == path:  # a module's or a file's own docstring: what the file is for
        questions = [pair.question, f"What does the module {path} do?", f"What is the purpose of {path}?",
                     f"Explain what {path} is for.", f"Why does {path} exist?"]
        return [(q, None) for q in questions], [text, f"{path}: {text}"]
    questions = [pair.question, f"What is `{name}` in {path} for?", f"Explain `{name}` from {path}.",
                 f"What is the job of `{name}` in {path}?", f"Describe what `{name}` in {path} does."]
    return [(q, None) for q in questions], [text, f"`{name}` in {path}: {text}",
                                            f"In {path}, `{name}` is documented as: {text}"]


def _signature(pair: QAPair, path: str) -> tuple[list, list[str]]:
    name, params, returns = pair.about, pair.fields.get("params", []), pair.fields.get("returns")
    call = f"`{name}({', '.join(params)})" + (f" -> {returns}`" if returns else "`")
    questions = [pair.question, f"What is the signature of `{name}` in {path}?",
                 f"How do you call `{name}` from {path}?", f"Which parameters does `{name}` in {path} accept?",
                 f"What does `{name}` in {path} expect as arguments?"]
    return [(q, None) for q in questions], [pair.answer, f"Its signature in {path} is {call}.",
                                            f"{call}, defined in {path}."]


def _heading(pair: QAPair, path: str) -> tuple[list, list[str]]:
    text, heading, title = pair.answer, pair.about, pair.fields.get("title") or path
    if heading.endswith("?"):  # a FAQ entry: the heading is the question
        asked = heading[0].lower() + heading[1:]
        questions = [pair.question, f"{title}: {heading}", f"According to {title}, {asked}", f"In {path}, {asked}"]
        answers = [text, f"{title} answers: {text}"]
    elif heading == title:
        questions = [pair.question, f"What does {title} cover?", f"Give an overview of {title}.",
                     f"Summarise {title}.", f"What is the page {path} about?"]
        answers = [text, f"{title}: {text}"]
    else:
        questions = [pair.question, f"What does {title} say under {heading}?", f"In {title}, what is said about {heading}?",
                     f"Summarise the section {heading} of {title}.", f"What does {path} say about {heading}?"]
        answers = [text, f"{title} says about {heading}: {text}", f"Under {heading}, {title} says: {text}"]
    return [(q, None) for q in questions], answers


def _change_reason(pair: QAPair, path: str) -> tuple[list, list[str]]:
    text, change, files = pair.answer, pair.fields.get("change", ""), pair.fields.get("files", [])
    general = [f"What was the reason for {change}?", f"Why was {change} made?", f"What motivated {change}?"]
    per_file = [(f"Why was {f} changed in {change}?", f) for f in files]
    # the pair's own question first, then files and general questions in turn
    questions = [(pair.question, files[0] if files else None)]
    rest = per_file[1:]
    for i in range(max(len(rest), len(general))):
        if i < len(general):
            questions.append((general[i], None))
        if i < len(rest):
            questions.append(rest[i])
    return questions, [text, f"{change} gives this reason: {text}"]


_WORDINGS = {"docstring": _docstring, "signature": _signature, "heading": _heading, "change_reason": _change_reason}
