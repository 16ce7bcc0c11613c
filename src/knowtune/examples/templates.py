"""Examples made without any model: raw text chunks and templated instructions.

Following ../shared/seeds/000: a page answers "Tell me about <page>", a file
answers "What does <file> look like?" with the snapshot date in front (so old
and new facts can be told apart), and a change answers "What changed in
<subject>?". Raw chunks carry a header naming their file, so the text the
model reads ties content to the name a question will use.
"""

from __future__ import annotations

from typing import Iterator

from ..records import Chunk, Document, Example, stable_id

MAX_LISTED_FILES = 20


def raw_example(doc: Document, chunk: Chunk, n_chunks: int) -> Example:
    body = chunk.text.strip("\n")
    text = f"{_header(doc, chunk, n_chunks)}\n\n{body}\n"
    metadata = {"source": doc.source, "path": doc.path}
    if chunk.metadata.get("diff_of"):
        metadata["follows"] = chunk.metadata["diff_of"]  # one file's part of a change: split with that file
    return Example(
        id=stable_id("raw", chunk.id), kind="raw", document_id=doc.id, provenance=[chunk.id], text=text,
        metadata=metadata,
    )


def instructions(doc: Document, chunks: list[Chunk]) -> Iterator[Example]:
    if doc.kind == "change":
        yield _instruction(doc, [c.id for c in chunks], *_change_qa(doc))
        return
    for chunk in chunks:
        if doc.kind == "code":
            question, answer = _file_qa(doc, chunk, len(chunks))
        else:
            question, answer = _page_qa(doc, chunk, len(chunks))
        yield _instruction(doc, [chunk.id], question, answer)


def _instruction(doc: Document, provenance: list[str], question: str, answer: str) -> Example:
    return Example(
        id=stable_id("instruction", doc.id, *provenance, question),
        kind="instruction",
        document_id=doc.id,
        provenance=provenance,
        messages=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        metadata={"source": doc.source, "path": doc.path, "template": doc.kind},
    )


def _header(doc: Document, chunk: Chunk, n_chunks: int) -> str:
    if doc.kind == "change" and "number" in doc.metadata:
        return f"Pull request #{doc.metadata['number']}: {doc.metadata['title']}"
    if doc.kind == "change":
        return f"Commit {doc.metadata['commit'][:12]}: {doc.metadata['title']}"
    if n_chunks == 1:
        return f"File: {doc.path}"
    return f"File: {doc.path} (lines {chunk.metadata['line_start']}-{chunk.metadata['line_end']})"


def _month(doc: Document) -> str:
    date = doc.metadata.get("date") or ""
    return date[:7] if len(date) >= 7 else "the snapshot"


def _file_qa(doc: Document, chunk: Chunk, n_chunks: int) -> tuple[str, str]:
    lang = doc.metadata.get("programming_language") or ""
    code = chunk.text.strip("\n")
    if n_chunks == 1:
        question = f"What does {doc.path} look like?"
        lead = f"As of {_month(doc)}, {doc.path} looks like:"
    else:
        lines = f"lines {chunk.metadata['line_start']}-{chunk.metadata['line_end']}"
        question = f"What does {doc.path} look like, {lines}?"
        lead = f"As of {_month(doc)}, {lines} of {doc.path} look like:"
    return question, f"{lead}\n\n```{lang}\n{code}\n```"


def _page_qa(doc: Document, chunk: Chunk, n_chunks: int) -> tuple[str, str]:
    title = doc.metadata.get("title") or doc.path
    about = chunk.metadata.get("about")
    if n_chunks == 1 or not about:
        question = f"Tell me about {title}" if n_chunks == 1 else (
            f"Tell me about {title}, lines {chunk.metadata['line_start']}-{chunk.metadata['line_end']} of {doc.path}"
        )
    else:
        question = f"Tell me about {about} in {doc.path}"
    return question, chunk.text.strip("\n")


def _change_qa(doc: Document) -> tuple[str, str]:
    subject = doc.metadata["title"]
    # The document text is header, message, file list, diff; the answer is everything before the diff.
    summary = doc.text.split("\nDiff:\n", 1)[0].rstrip()
    head, _, files = summary.partition("\nFiles changed:\n")
    listed = files.splitlines()
    if len(listed) > MAX_LISTED_FILES:
        listed = listed[:MAX_LISTED_FILES] + [f"  ... and {len(listed) - MAX_LISTED_FILES} more files"]
    answer = head.rstrip() + ("\n\nFiles changed:\n" + "\n".join(listed) if listed else "")
    if "number" in doc.metadata:
        return f'What changed in pull request #{doc.metadata["number"]} ("{subject}")?', answer
    return f'What changed in "{subject}"?', answer
