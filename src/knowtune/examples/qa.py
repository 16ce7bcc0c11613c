"""Question–answer examples made without any model, from what documents already say.

Docstrings and doc comments, signatures, page headings with their first
paragraph, and the reasons commits and pull requests give: each answer is
quoted from (or, for a signature, built from) one place in the document, so
an example's provenance is the chunk that holds that place, and the knowledge
split can hold the question out while the chunk is trained.
"""

from __future__ import annotations

from ..records import Chunk, Document, Example, stable_id
from .phrasings import phrasings
from .qa_pair import QAPair
from .qa_python import python_pairs
from .qa_text import change_pairs, doc_pairs

__all__ = ["QAPair", "extract_qa", "qa_examples"]

TREE_SITTER_LANGUAGES = ("javascript", "typescript", "go", "java")


def extract_qa(doc: Document) -> tuple[list[QAPair], str | None]:
    """The document's pairs, and why it has none when no extractor reads its language or kind."""
    reason = None
    if doc.kind in ("doc", "page"):
        pairs = doc_pairs(doc)
    elif doc.kind == "change":
        pairs = change_pairs(doc)
    elif doc.kind == "code":
        language = doc.metadata.get("programming_language") or "unknown language"
        if language == "python":
            pairs, reason = python_pairs(doc)
        elif language in TREE_SITTER_LANGUAGES:
            try:
                # Imported here so a corpus without these languages never needs the grammars.
                from .qa_treesitter import treesitter_pairs
            except ImportError:
                return [], f"no QA extractor for {language} (tree-sitter grammars are not installed)"
            pairs = treesitter_pairs(doc, language)
        else:
            return [], f"no QA extractor for {language}"
    else:
        return [], f"no QA extractor for kind {doc.kind}"
    return _first_of_each(pairs), reason


def qa_examples(doc: Document, chunks: list[Chunk], n: int = 1) -> tuple[list[Example], str | None]:
    """Each fact of the document in n wordings to train, and a spare one (phrasings.py)."""
    pairs, reason = extract_qa(doc)
    return [e for p in pairs for e in _examples(doc, chunks, p, n)], reason


def _examples(doc: Document, chunks: list[Chunk], pair: QAPair, n: int) -> list[Example]:
    provenance = [c.id for c in chunks if pair.span is None or _overlaps(c.span, pair.span)]
    fact = stable_id("fact", doc.id, pair.rule, pair.about)
    wordings = phrasings(pair, doc.path, n)
    out = []
    for i, w in enumerate(wordings):
        metadata = {"source": doc.source, "path": doc.path, "rule": pair.rule, "about": pair.about,
                    "fact": fact, "phrasing": i}
        if i == len(wordings) - 1 and i > 0:
            metadata["spare"] = True  # the curate stage may hold it out: a trained fact, asked another way
        if w.follows:
            metadata["follows"] = w.follows  # "Why was <file> changed in ...?" is about that file: split with it
        out.append(Example(
            id=stable_id("qa", doc.id, pair.rule, w.question), kind="qa", document_id=doc.id,
            provenance=provenance or [c.id for c in chunks],
            messages=[{"role": "user", "content": w.question}, {"role": "assistant", "content": w.answer}],
            metadata=metadata,
        ))
    return out


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _first_of_each(pairs: list[QAPair]) -> list[QAPair]:
    # Overloads, getter/setter pairs and repeated headings ask the same question twice;
    # the example id is made from the question, so only the first may stay.
    seen: set[tuple[str, str]] = set()
    out = []
    for p in pairs:
        if (p.rule, p.question) not in seen:
            seen.add((p.rule, p.question))
            out.append(p)
    return out
