"""The chunk stage: every document cut into token-bounded pieces that know what they are about."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..progress import track
from ..records import Chunk, Document, read_jsonl, stable_id, write_jsonl
from ..settings import ChunkSettings
from .chunking import chunk_text
from .diff_sections import diff_sections, section_of

BATCH = 64


def run_chunk(settings: ChunkSettings, documents: Path, tokenizer_dir: Path, out: Path) -> dict:
    from ..chat import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    docs = list(read_jsonl(documents / "documents.jsonl", Document))
    chunks: list[Chunk] = []
    for start in track(range(0, len(docs), BATCH), "chunking", total=-(-len(docs) // BATCH)):
        batch = docs[start : start + BATCH]
        enc = tokenizer(
            [d.text for d in batch], add_special_tokens=False, split_special_tokens=True,
            return_offsets_mapping=True,
        )
        for doc, offsets in zip(batch, enc["offset_mapping"]):
            sections = diff_sections(doc.text) if doc.kind == "change" else []
            pieces = chunk_text(doc.text, offsets, settings.chunk_tokens, doc.kind, settings.chunk_overlap,
                                [s for _, s, _ in sections])
            for k, p in enumerate(pieces):
                metadata = {"path": doc.path, "source": doc.source, "index": k, "of": len(pieces),
                            "line_start": p.line_start, "line_end": p.line_end, "about": p.about}
                diff_of = section_of(sections, p.start, p.end, doc.text)
                if diff_of:
                    metadata["diff_of"] = diff_of  # the split puts this part with its file (diff_sections.py)
                chunks.append(Chunk(
                    id=stable_id(doc.id, str(k)), document_id=doc.id, text=doc.text[p.start : p.end],
                    n_tokens=p.n_tokens, span=(p.start, p.end), metadata=metadata,
                ))
    write_jsonl(out / "chunks.jsonl", chunks)
    sizes = [c.n_tokens for c in chunks]
    return {
        "chunks": len(chunks),
        "documents": len(docs),
        "tokens": sum(sizes),
        "max_tokens": max(sizes, default=0),
        "mean_tokens": round(sum(sizes) / len(sizes), 1) if sizes else 0,
        "by_source": dict(Counter(c.metadata["source"] for c in chunks)),
    }
