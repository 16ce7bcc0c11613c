"""Evaluate: did the model learn the organisation's knowledge, would retrieval have done better, and what
did it forget?

Every question set is answered four ways, with the same chat template and decoding: the base model, the base
model with retrieved passages, the tuned model, the tuned model with retrieval (evaluate/retrieval.py). The
differences between ways come with paired bootstrap intervals (compare.py). Held-out documents give a loss
for each model, by kind of document.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ..base_model import base_location
from ..chat import encode_example, load_tokenizer
from ..hardware import refuse_emulated_bf16
from ..progress import console
from ..records import write_json, write_jsonl
from .compare import compare
from .general import general_correct
from .generate import generate
from .judge import judge_rows, judge_scores
from .metrics import exact_match, f1, rouge_l
from .perplexity import mean_loss, row_losses, unigram_counts, unigram_loss
from .questions import Question, question_sets
from .retrieval import DEFAULT_PROMPT, Retriever, with_passages

F1_PASS = 0.5
KNOWN = 0.5  # the base model already knew a fact when its closed-book answer had F1 above this
DOC_KINDS = ("code", "doc", "change")


def run_eval(settings, dataset: Path, model_dir: Path, base_dir: Path, tokenizer_dir: Path, chunks_dir: Path,
             out: Path) -> dict:
    from ..curate import load_split

    cfg = settings.eval
    if cfg.precision == "bf16":
        refuse_emulated_bf16("eval.precision", "fp32")
    tokenizer = load_tokenizer(tokenizer_dir)
    models = {"tuned": model_dir}
    if settings.base_model != "scratch":  # a model from scratch has no base worth asking
        models = {"base": base_location(settings.base_model, base_dir), "tuned": model_dir}
    sets = question_sets(dataset, cfg, load_split)
    trained_docs = {e.document_id for e in load_split(dataset, "train")}
    retriever = Retriever.of_training(chunks_dir, trained_docs) if cfg.rag.k else None
    context = min(cfg.rag.context, model_context(model_dir))
    asked = {name: _ways(questions, retriever, cfg, tokenizer, context) for name, questions in sets.items()
             if questions}

    results: dict = {"held_out": {}, "held_out_by_kind": {}}
    rows: list[dict] = []
    splits = {s: load_split(dataset, s) for s in ("train", "val", "test")}
    counts = unigram_counts([encode_example(tokenizer, e) for e in splits["train"]])
    held = {s: [encode_example(tokenizer, e) for e in splits[s]] for s in ("val", "test")}
    for name, where in models.items():
        started = time.perf_counter()
        model = load_model(where, tokenizer, cfg.precision)
        for split, encoded in held.items():
            # every row scored once; the split's loss and each kind's are sums over its rows
            losses = row_losses(model, encoded, cfg.batch_size, tokenizer.pad_token_id)
            for kind in (None, *DOC_KINDS):
                pick = [i for i, e in enumerate(splits[split]) if kind is None or e.metadata.get("doc_kind") == kind]
                if not pick:
                    continue
                r = held_out_loss([losses[i] for i in pick], [encoded[i] for i in pick], counts, len(tokenizer))
                target = results["held_out"] if kind is None else results["held_out_by_kind"].setdefault(kind, {})
                target.setdefault(split, {})[name] = r
        scored = time.perf_counter()
        asked_before = len(rows)
        for set_name, ways in asked.items():
            for rag, (questions, conversations, retrieved) in ways.items():
                way = f"{name}_rag" if rag else name
                rows += answer(model, tokenizer, questions, conversations, retrieved, cfg, way,
                               f"{way}: {set_name} questions")
        del model
        # where a slow CPU spends the stage: scoring held-out text, or generating answers
        console.print(f"eval: {name} model: loaded and scored held-out text in {scored - started:.0f} s, "
                      f"{len(rows) - asked_before} answers in {time.perf_counter() - scored:.0f} s")

    if cfg.judge is not None:
        judge_rows([r for r in rows if r["set"] != "general"], cfg.judge, out / "cache")
    for set_name in asked:
        mine = [r for r in rows if r["set"] == set_name]
        by_way = {}
        for r in mine:
            by_way.setdefault(r["model"], []).append(r)
        results[set_name] = {way: score(rs) for way, rs in by_way.items()}
        if cfg.judge is not None and set_name != "general":
            for way, rs in by_way.items():
                results[set_name][way].update(judge_scores(rs))
        metric = "exact_match" if set_name == "general" else "f1"
        results[set_name]["comparison"] = compare(
            {way: {r["id"]: r[metric] for r in rs} for way, rs in by_way.items()}, seed=cfg.seed)
        if retriever is not None:
            ret = asked[set_name][True][2]
            results[set_name]["retrieval"] = retrieval_quality(asked[set_name][True][0], ret, cfg.rag.k)
    if "knowledge" in results and "base" in models:
        results["knowledge"]["known_before"] = known_split([r for r in rows if r["set"] == "knowledge"])
    during = model_dir.parent / "during.jsonl"  # written by the train stage when train.during_training is on
    if during.is_file():
        results["during_training"] = [json.loads(line) for line in during.read_text().splitlines() if line.strip()]
    write_jsonl(out / "generations.jsonl", rows)
    write_json(out / "results.json", results)
    for set_name in asked:
        r = results[set_name]
        metric = "exact_match" if set_name == "general" else "f1"
        line = ", ".join(f"{w} {r[w][metric]}" for w in r if w not in ("comparison", "retrieval", "known_before"))
        console.print(f"eval: {set_name} ({metric.replace('_', ' ')}): {line}; {r['comparison']['verdict']}")
    return flat_counts(results)


def model_context(model_dir: Path) -> int:
    """The positions the model was built for (a model from scratch: train.max_length)."""
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(model_dir), "max_position_embeddings", 1 << 30)


def _ways(questions: list[Question], retriever: Retriever | None, cfg, tokenizer, context: int) -> dict:
    """Closed book (False) and with retrieval (True): (questions, conversations, what was retrieved)."""
    ways = {False: (questions, [q.messages for q in questions], None)}
    if retriever is None:
        return ways
    found = retriever.search([q.messages[-1]["content"] for q in questions], cfg.rag.k)
    template = cfg.rag.prompt or DEFAULT_PROMPT
    room = cfg.general_max_new_tokens if questions[0].set == "general" else cfg.max_new_tokens
    with_rag = [with_passages(q.messages, chunks, template, tokenizer, context, room)
                for q, chunks in zip(questions, found)]
    ways[True] = (questions, [r.messages for r in with_rag], with_rag)
    return ways


def load_model(where, tokenizer, precision: str = "fp32"):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):  # a base without the run's new tokens
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return model.eval()


def held_out_loss(losses: list[tuple[float, int]], rows: list[dict], counts, vocab_size: int) -> dict:
    loss = mean_loss(losses)
    uni = unigram_loss(counts, rows, vocab_size)
    return {"loss": round(loss, 4), "perplexity": round(math.exp(min(loss, 50)), 2), "unigram_loss": round(uni, 4),
            "gain_over_unigram": round(uni - loss, 4), "examples": len(rows)}


def answer(model, tokenizer, questions: list[Question], conversations: list[list[dict]], retrieved, cfg,
           way: str, what: str) -> list[dict]:
    general = questions[0].set == "general"
    budget = cfg.general_max_new_tokens if general else cfg.max_new_tokens
    outs = generate(model, tokenizer, conversations, budget, cfg.batch_size, what)
    rows = []
    for i, (q, g) in enumerate(zip(questions, outs)):
        row = {"set": q.set, "id": q.id, "model": way, "kind": q.kind, "document_id": q.document_id,
               "question": q.messages[-1]["content"], "reference": q.reference, "generation": g.text,
               "stopped": g.stopped, "new_tokens": g.new_tokens}
        if retrieved is not None:
            row["retrieved"] = retrieved[i].chunk_ids
            row["passages_dropped"] = retrieved[i].dropped
        if general:
            row["exact_match"] = row["f1"] = row["rouge_l"] = float(
                general_correct(g.text, list(q.answers), q.messages[-1]["content"]))
        else:
            row["exact_match"] = exact_match(g.text, q.reference)
            row["f1"] = round(f1(g.text, q.reference), 4)
            row["rouge_l"] = round(rouge_l(g.text, q.reference), 4)
        rows.append(row)
    return rows


def score(rows: list[dict]) -> dict:
    n = len(rows)
    out = {
        "questions": n,
        "exact_match": round(sum(r["exact_match"] for r in rows) / n, 4),
        "f1": round(sum(r["f1"] for r in rows) / n, 4),
        "rouge_l": round(sum(r["rouge_l"] for r in rows) / n, 4),
        "f1_pass_rate": round(sum(r["f1"] > F1_PASS for r in rows) / n, 4),
        "stopped_at_eos": round(sum(r["stopped"] for r in rows) / n, 4),
    }
    kinds = sorted({r["kind"] for r in rows})
    if len(kinds) > 1:
        out["by_kind"] = {k: {"questions": len(rs), "f1": round(sum(r["f1"] for r in rs) / len(rs), 4)}
                          for k in kinds if (rs := [r for r in rows if r["kind"] == k])}
    return out


def retrieval_quality(questions: list[Question], retrieved, k: int) -> dict:
    """hit@k: how often the chunk a question's answer came from (its provenance) was among those retrieved."""
    scored = [(q, r) for q, r in zip(questions, retrieved) if q.provenance]
    hits = sum(bool(set(q.provenance) & set(r.chunk_ids)) for q, r in scored)
    return {"k": k, "questions": len(scored), "hit_at_k": round(hits / len(scored), 4) if scored else None,
            "passages_dropped_for_context": sum(r.dropped > 0 for r in retrieved)}


def known_split(rows: list[dict]) -> dict:
    """The knowledge questions the base model already answered closed-book, and the gain on the others."""
    base = {r["id"]: r["f1"] for r in rows if r["model"] == "base"}
    tuned = {r["id"]: r["f1"] for r in rows if r["model"] == "tuned"}
    known = [q for q, f in base.items() if f > KNOWN]
    unknown = [q for q in base if q not in known and q in tuned]
    gain = sum(tuned[q] - base[q] for q in unknown) / len(unknown) if unknown else None
    return {"threshold_f1": KNOWN, "known": len(known), "unknown": len(unknown),
            "tuned_gain_on_unknown": round(gain, 4) if gain is not None else None,
            "tuned_f1_on_known": round(sum(tuned[q] for q in known if q in tuned) / len(known), 4) if known else None}


def flat_counts(results: dict) -> dict:
    """The numbers a sweep ranks by and the report's summary shows: the tuned model's, then the others'."""
    out = {}
    for split, by_model in results.get("held_out", {}).items():
        for model, r in by_model.items():
            out[f"{split}_loss" if model == "tuned" else f"{model}_{split}_loss"] = r["loss"]
    for set_name, by_way in results.items():
        if set_name.startswith("held_out"):
            continue
        for way, r in by_way.items():
            if isinstance(r, dict) and "f1" in r:
                prefix = set_name if way == "tuned" else f"{way}_{set_name}"
                out[f"{prefix}_f1"], out[f"{prefix}_exact_match"] = r["f1"], r["exact_match"]
    return out
