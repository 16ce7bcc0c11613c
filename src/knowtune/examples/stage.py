"""The examples stage: raw chunks, templated instructions, question-answer pairs (made without a model
and, when configured, by a teacher model), preference pairs, and chat data read as it is."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from ..config import BuildConfig, ConfigError
from ..settings import ExamplesSettings
from ..progress import bar, track
from ..records import Chunk, Document, Example, atomic_write, read_jsonl, write_jsonl
from .preference import neighbour_pairs
from .qa import qa_examples
from .templates import instructions, raw_example

CACHE = "cache"  # teacher replies: kept across reruns, not part of the stage's artifact


def load_inputs(documents: Path, chunks_dir: Path) -> tuple[dict[str, Document], dict[str, list[Chunk]]]:
    docs = {d.id: d for d in read_jsonl(documents / "documents.jsonl", Document)}
    by_doc: dict[str, list[Chunk]] = defaultdict(list)
    for c in read_jsonl(chunks_dir / "chunks.jsonl", Chunk):
        by_doc[c.document_id].append(c)
    return docs, by_doc


def run_examples(cfg: ExamplesSettings, documents: Path, chunks_dir: Path, out: Path) -> dict:
    docs, by_doc = load_inputs(documents, chunks_dir)
    examples: list[Example] = []
    skipped: list[dict] = []
    for doc_id, chunks in track(list(by_doc.items()), "building examples"):
        doc = docs[doc_id]
        if cfg.raw:
            examples += [raw_example(doc, c, len(chunks)) for c in chunks]
        if cfg.instructions:
            examples += instructions(doc, chunks)
        if cfg.qa:
            pairs, reason = qa_examples(doc, chunks, cfg.phrasings)
            examples += pairs
            if reason:
                skipped.append({"document_id": doc.id, "path": doc.path, "step": "qa", "reason": reason})

    counts: dict = {}
    preference: list[Example] = []
    if cfg.teacher is not None:
        result = _teach(cfg, docs, by_doc, out)
        examples += result.examples
        preference = result.preference
        skipped += [{**r, "step": "teacher"} for r in result.rejected]
        counts["teacher"] = result.usage
    if cfg.preference and cfg.teacher is None:
        preference, unpaired = neighbour_pairs(examples)
        skipped += [{**r, "step": "preference"} for r in unpaired]
    examples += preference

    for e in examples:
        # Curation judges prose and code differently (language id and quality rules are for prose).
        e.metadata["doc_kind"] = docs[e.document_id].kind
    external = documents / "external.jsonl"
    if external.is_file():
        examples += read_jsonl(external, Example)

    write_jsonl(out / "examples.jsonl", examples)
    write_jsonl(out / "skipped.jsonl", skipped)
    return {
        "examples": len(examples),
        "by_kind": dict(Counter(e.kind for e in examples)),
        "by_source": dict(Counter(e.metadata.get("source", "?") for e in examples)),
        "skipped": len(skipped),
        "skipped_by_step": dict(Counter(s["step"] for s in skipped)),
        **counts,
    }


def _teach(cfg: ExamplesSettings, docs: dict[str, Document], by_doc: dict[str, list[Chunk]], out: Path):
    from . import teacher

    chunks = [c for cs in by_doc.values() for c in cs]
    for name, text in cfg.prompts.items():  # the prompts this run used, next to what they produced
        atomic_write(out / "prompts" / f"{name}.txt", text)
    with bar() as progress:
        task = progress.add_task("asking the teacher", total=len(chunks))
        return teacher.generate(
            chunks, docs, cfg.teacher, cfg.judge, out / CACHE,
            progress=lambda done, total: progress.update(task, completed=done, total=total), prompts=cfg.prompts,
        )


def prompt_texts(cfg: BuildConfig) -> dict[str, str]:
    """The texts of the prompts the teacher steps will send (files read, defaults filled in)."""
    from .teacher.prompts import teacher_prompts

    return teacher_prompts(cfg.teacher, cfg.judge, cfg.preference) if cfg.teacher is not None else {}


def teacher_dry_run(cfg: BuildConfig, documents: Path, chunks_dir: Path, tokenizer_dir: Path, out: Path) -> dict:
    from ..chat import load_tokenizer
    from . import teacher

    if cfg.teacher is None:
        raise ConfigError("build.teacher is not configured: there is nothing to estimate")
    docs, by_doc = load_inputs(documents, chunks_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    chunks = [c for cs in by_doc.values() for c in cs]
    return teacher.dry_run(chunks, docs, cfg.teacher, lambda text: len(tokenizer(text)["input_ids"]),
                           cache_dir=out / CACHE)
