"""The curate stage: every step in order, each dropping records with a reason; then the split, the
decontamination, the selection, and the dataset with its statistics and card."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np

from ..config import CurateConfig
from ..executor import Executor
from ..progress import console, track
from ..records import Example, atomic_write, read_jsonl, to_dict, write_json, write_jsonl
from ..runs import StageError
from ..settings import CurateSettings
from ..chat import IGNORE, encode_example, load_tokenizer
from . import split as splitting
from .cache import VectorCache
from .decontaminate import benchmark_texts, decontaminate
from .select import select
from .stats import dataset_stats, plot_lengths
from .steps import Dropped, StepResult, exact_dedup, leak_check, length_filter
from .writer import SPLITS, write_card, write_dataset

CACHE = "cache"  # vectors by text hash: kept across reruns, not part of the artifact
# How far from a threshold a decision may go the other way on another kind of CPU: measured, bfloat16 against
# float32 MiniLM vectors move pair cosines by up to 0.0021 (static vectors are float32 everywhere: 1e-6).
COSINE_EPS, STATIC_EPS = 0.003, 1e-4


def run_curate(settings: CurateSettings, examples_dir: Path, tokenizer_dir: Path, out: Path) -> dict:
    cfg, allow, executor = settings.curate, settings.allow, settings.executor
    tokenizer = load_tokenizer(tokenizer_dir)
    examples = list(read_jsonl(examples_dir / "examples.jsonl", Example))
    parts = {e.id: _parts(tokenizer, e) for e in track(examples, "measuring tokens")}
    lengths = {i: a + b for i, (a, b) in parts.items()}
    before = list(examples)
    funnel: list[dict] = []
    dropped: list[Dropped] = []
    current = examples

    clock = [time.perf_counter()]
    timings: list[str] = []

    def step(name: str, result: StepResult) -> None:
        nonlocal current
        # The step's work ran while its arguments were evaluated: since the previous step ended. Seconds go
        # to log.txt, not stats.json, which must be the same bytes whatever machine or executor ran it.
        now = time.perf_counter()
        funnel.append({"step": name, "in": len(current), "out": len(result.kept)})
        timings.append(f"{name}: {now - clock[0]:.2f} s")
        clock[0] = now
        dropped.extend(result.dropped)
        current = result.kept
        note = f" ({result.note})" if result.note else ""
        console.print(f"curate: {name}: {len(result.dropped)} dropped{note}, {len(result.kept)} left")

    notes: list[str] = []
    with Executor(executor) as ex, VectorCache(out / CACHE / "vectors.sqlite") as cache:
        if cfg.leak_check != "off":
            step("leak_check", leak_check(current, allow))
        if cfg.quality.languages or cfg.quality.gopher.enabled:
            step("quality", _quality(current, cfg, ex, cache))
        step("length", length_filter(current, lengths, cfg.min_tokens, cfg.max_tokens))
        if cfg.exact_dedup:
            step("exact_dedup", by_fact(current, exact_dedup))
        if cfg.near_dedup.enabled:
            step("near_dedup", by_fact(current, lambda xs: _near_dedup(xs, cfg, lengths, ex, cache)))
        if cfg.semantic_dedup.enabled:
            step("semantic_dedup", by_fact(current, lambda xs: _semantic_dedup(xs, cfg, lengths, ex, cache, notes)))
        splitting.assign(current, cfg.val_share, cfg.test_share, cfg.knowledge_share, cfg.seed,
                         cfg.paraphrase_share)
        if cfg.decontaminate.enabled:
            step("decontaminate", decontaminate(current, cfg.decontaminate.ngram,
                                                benchmark_texts(cfg.decontaminate.benchmarks)))
        step("select", select(current, cfg.select, lengths, cfg.seed))
        log = ex.log + [f"vector cache: {cache.hits} reused, {cache.misses} computed"] + notes + timings

    for e in current:
        e.metadata["n_tokens"] = lengths[e.id]
    counts = write_dataset(current, out)
    write_jsonl(out / "excluded.jsonl", (d.row() for d in dropped))
    stats = dataset_stats(current, lengths)
    stats.update(funnel=funnel, dropped_by_step=_count_steps(dropped), files=counts)
    write_json(out / "stats.json", stats)
    plot_lengths(_histograms(before, parts), _histograms(current, parts), out / "plots" / "lengths.png",
                 cfg.max_tokens)
    write_card(out, current, funnel, counts, cfg.model_dump(mode="json"))
    atomic_write(out / "log.txt", "\n".join(log) + "\n")
    leaks = sum(d.step == "leak_check" for d in dropped)
    if leaks and cfg.leak_check == "fail":
        raise StageError(
            f"curate: {leaks} examples still hold a secret after ingest (masked in {out / 'excluded.jsonl'}, step "
            "leak_check). Ingest should have caught them: check ingest.redact, or set curate.leak_check: drop to "
            "go on without them.")
    return {
        "examples": len(current), "dropped": len(dropped),
        **{s: sum(e.split == s for e in current) for s in SPLITS},
        "train_tokens": stats["train_tokens"], "dropped_by_step": stats["dropped_by_step"],
    }


def _parts(tokenizer, e: Example) -> tuple[int, int]:
    """(instruction tokens, output tokens): what the model reads, and what it is trained to write."""
    row = encode_example(tokenizer, e)
    trained = sum(label != IGNORE for label in row["labels"])
    return len(row["input_ids"]) - trained, trained


def _histograms(examples: list[Example], parts: dict) -> dict[str, list[int]]:
    chat = [parts[e.id] for e in examples if e.kind != "raw"]
    return {
        "instruction": [a for a, _ in chat],
        "output": [b for _, b in chat],
        "combined": [sum(parts[e.id]) for e in examples],
    }


def by_fact(examples: list[Example], dedup) -> StepResult:
    """A dedup step decided on each fact's first wording (and on every example that states no fact); a fact's
    other wordings go where its first went: they repeat it on purpose (phrasings.py), they are no duplicates."""
    result = dedup([e for e in examples if not e.metadata.get("phrasing")])
    gone = {d.record["metadata"]["fact"]: d for d in result.dropped if d.record["metadata"].get("fact")}
    kept = {e.id for e in result.kept}
    out = StepResult([], list(result.dropped))
    for e in examples:
        if e.id in kept:
            out.kept.append(e)
        elif e.metadata.get("phrasing"):
            lead = gone.get(e.metadata["fact"])
            if lead is None:
                out.kept.append(e)
            else:
                out.dropped.append(Dropped(lead.step, f"another wording of a fact dropped: {lead.reason}", to_dict(e),
                                           lead.duplicate_of))
    return out


def _by_kind(examples: list[Example]) -> dict[str, list[Example]]:
    groups: dict[str, list[Example]] = {}
    for e in examples:
        groups.setdefault(e.kind, []).append(e)
    return groups


def full_text(e: Example) -> str:
    if e.kind == "raw":
        return e.text or ""
    messages = (e.messages or []) + (e.prompt or []) + (e.chosen or [])
    return "\n".join(m["content"] for m in messages)


def output_text(e: Example) -> str:
    """What an example teaches the model to write: the semantic duplicate test looks at this alone, so two
    questions worded differently about one answer are duplicates, and one question with two answers is not."""
    if e.kind == "raw":
        return e.text or ""
    replies = [m["content"] for m in (e.messages or []) + (e.chosen or []) if m["role"] == "assistant"]
    return replies[-1] if replies else ""


def _vectors(texts: list[str], table: str, fn, ex: Executor, cache: VectorCache, what: str) -> np.ndarray:
    def compute(missing: list[str]) -> np.ndarray:
        return np.concatenate(ex.map(fn, missing, what))

    return cache.get_or_compute(table, texts, compute)


def _near_dedup(examples, cfg: CurateConfig, lengths, ex, cache) -> StepResult:
    from .minhash import VERSION, lsh_duplicates, signatures

    c = cfg.near_dedup
    fn = partial(signatures, shingle=c.shingle, num_perm=c.num_perm, seed=c.seed)
    sigs = _vectors([full_text(e) for e in examples], f"minhash{VERSION}:{c.shingle}:{c.num_perm}:{c.seed}", fn, ex, cache,
                    "minhash signatures")
    index = {e.id: i for i, e in enumerate(examples)}
    pairs = []
    for group in _by_kind(examples).values():
        rows = sigs[[index[e.id] for e in group]]
        pairs += lsh_duplicates(rows, [e.id for e in group], [lengths[e.id] for e in group], c.threshold, c.bands,
                                c.keep)
    return _apply(examples, pairs, "near_dedup", "MinHash Jaccard {:.2f} with a kept example")


def _semantic_dedup(examples, cfg: CurateConfig, lengths, ex, cache, log: list[str]) -> StepResult:
    from ..hardware import cpu_kind
    from .semantic import embed, screen_scores, semantic_duplicates

    c = cfg.semantic_dedup
    fn = partial(embed, model=c.model)
    pairs, best, screened = [], [], []
    for group in _by_kind(examples).values():
        texts = [output_text(e) for e in group]
        # The screen needs the whole group (its token weights come from it), so it runs here; the model runs
        # on the executor, only for the texts that passed.
        scores = screen_scores(texts, c.model) if c.screen else None
        rows = list(range(len(group))) if scores is None else [int(i) for i in np.flatnonzero(scores >= c.screen)]
        screened += [] if scores is None else list(scores)
        if len(rows) < 2:
            continue
        emb = _vectors([texts[i] for i in rows], f"embedding:{c.model}", fn, ex, cache, "embeddings")
        pairs += semantic_duplicates(emb, [group[i].id for i in rows], [lengths[group[i].id] for i in rows],
                                     c.threshold, c.keep, best)
    # On one machine the vectors are the same bits every run (embed.py); another kind of CPU rounds its
    # float kernels differently (bfloat16 against float32: pair cosines move by up to 0.002), so a decision
    # this close to a threshold may go the other way there.
    near = sum(abs(b - c.threshold) < COSINE_EPS for b in best)
    near_screen = sum(abs(x - c.screen) < STATIC_EPS for x in screened) if c.screen else 0
    log.append(f"semantic_dedup: embeddings on {cpu_kind()}; {near} records within {COSINE_EPS} of the "
               f"threshold {c.threshold} and {near_screen} within {STATIC_EPS} of the screen's {c.screen}: only "
               "these may be decided differently on another kind of CPU")
    return _apply(examples, pairs, "semantic_dedup", "output's cosine similarity {:.3f} with a kept example")


def _quality(examples, cfg: CurateConfig, ex: Executor, cache: VectorCache) -> StepResult:
    from .quality import detect_languages, prose_of, quality_filter

    prose = [prose_of(e) or "" for e in examples]
    languages: list[tuple[str | None, float]] = [(None, 0.0)] * len(examples)
    if cfg.quality.languages:
        todo = [i for i, p in enumerate(prose) if p]
        fn = partial(detect_languages, languages=cfg.quality.languages)
        found = [r for rs in ex.map(fn, [prose[i] for i in todo], "language id") for r in rs]
        for i, r in zip(todo, found):
            languages[i] = r
    return quality_filter(examples, cfg.quality, languages)


def _apply(examples: list[Example], pairs: list[tuple[str, str, float]], name: str, reason: str) -> StepResult:
    gone = {dropped: (kept, score) for dropped, kept, score in pairs}
    result = StepResult([])
    for e in examples:
        if e.id in gone:
            kept, score = gone[e.id]
            result.dropped.append(Dropped(name, reason.format(score), to_dict(e), kept))
        else:
            result.kept.append(e)
    return result


def _count_steps(dropped: list[Dropped]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dropped:
        out[d.step] = out.get(d.step, 0) + 1
    return out
