"""Build: documents become token-bounded chunks, and chunks become training examples."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from ..config import BuildConfig
from ..progress import track
from ..records import Chunk, Document, Example, read_jsonl, stable_id, write_jsonl
from .chunking import chunk_text
from .templates import instructions, raw_example
from .tokenizer import run_tokenizer

__all__ = ["run_tokenizer", "run_chunk", "run_examples", "load_tokenizer"]

BATCH = 64


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def run_chunk(chunk_tokens: int, documents: Path, tokenizer_dir: Path, out: Path) -> dict:
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
            pieces = chunk_text(doc.text, offsets, chunk_tokens, doc.kind)
            for k, p in enumerate(pieces):
                chunks.append(Chunk(
                    id=stable_id(doc.id, str(k)), document_id=doc.id, text=doc.text[p.start : p.end],
                    n_tokens=p.n_tokens, span=(p.start, p.end),
                    metadata={
                        "path": doc.path, "index": k, "of": len(pieces), "line_start": p.line_start,
                        "line_end": p.line_end, "about": p.about,
                    },
                ))
    write_jsonl(out / "chunks.jsonl", chunks)
    sizes = [c.n_tokens for c in chunks]
    return {
        "chunks": len(chunks),
        "documents": len(docs),
        "tokens": sum(sizes),
        "max_tokens": max(sizes, default=0),
        "mean_tokens": round(sum(sizes) / len(sizes), 1) if sizes else 0,
    }


def run_examples(cfg: BuildConfig, documents: Path, chunks_dir: Path, out: Path) -> dict:
    docs = {d.id: d for d in read_jsonl(documents / "documents.jsonl", Document)}
    by_doc: dict[str, list[Chunk]] = defaultdict(list)
    for c in read_jsonl(chunks_dir / "chunks.jsonl", Chunk):
        by_doc[c.document_id].append(c)
    examples: list[Example] = []
    for doc_id, chunks in track(list(by_doc.items()), "building examples"):
        doc = docs[doc_id]
        if cfg.raw:
            examples += [raw_example(doc, c, len(chunks)) for c in chunks]
        if cfg.instructions:
            examples += instructions(doc, chunks)
    write_jsonl(out / "examples.jsonl", examples)
    return {"examples": len(examples), "by_kind": dict(Counter(e.kind for e in examples))}
