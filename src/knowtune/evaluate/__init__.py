"""Evaluate: does the model generalise to unseen documents, and does it know what it was trained on?"""

from __future__ import annotations

import math
import random
from pathlib import Path

from ..config import EvalConfig
from ..records import Example, write_json, write_jsonl
from ..chat import answer_of, encode_example
from .generate import generate
from .metrics import exact_match, f1
from .perplexity import model_loss, unigram_loss

QUESTION_KINDS = ("instruction", "qa")
F1_PASS = 0.5


def run_eval(cfg: EvalConfig, dataset: Path, model_dir: Path, out: Path) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..curate import load_split

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    results: dict = {}

    train_rows = [encode_example(tokenizer, e) for e in load_split(dataset, "train")]
    for split in ("val", "test"):
        rows = [encode_example(tokenizer, e) for e in load_split(dataset, split)]
        if not rows:
            continue
        loss = model_loss(model, rows, cfg.batch_size, tokenizer.pad_token_id)
        uni = unigram_loss(train_rows, rows, len(tokenizer))
        results[split] = {
            "loss": round(loss, 4), "perplexity": round(math.exp(min(loss, 50)), 2),
            "unigram_loss": round(uni, 4), "unigram_perplexity": round(math.exp(min(uni, 50)), 2),
            "gain_over_unigram": round(uni - loss, 4), "examples": len(rows),
        }

    rng = random.Random(cfg.seed)
    sets = {
        "knowledge": _sample([e for e in load_split(dataset, "knowledge")
                              if e.kind in QUESTION_KINDS and _in_part(e, cfg.knowledge_questions)],
                             cfg.knowledge_samples, rng),
        "trained": _sample([e for e in load_split(dataset, "train") if e.kind in QUESTION_KINDS],
                           cfg.trained_samples, rng),
    }
    generations = []
    for name, examples in sets.items():
        if not examples:
            continue
        outs = generate(model, tokenizer, [e.messages[:-1] for e in examples], cfg.max_new_tokens,
                        cfg.batch_size, f"answering {name} questions")
        rows = []
        for e, g in zip(examples, outs):
            reference = answer_of(e) or ""
            rows.append({
                "set": name, "id": e.id, "document_id": e.document_id, "question": e.messages[-2]["content"],
                "reference": reference, "generation": g.text, "stopped": g.stopped, "new_tokens": g.new_tokens,
                "exact_match": exact_match(g.text, reference), "f1": round(f1(g.text, reference), 4),
            })
        results[name] = score(rows)
        generations += rows
    if generations:
        results["stopped_at_eos"] = round(sum(r["stopped"] for r in generations) / len(generations), 4)
    write_jsonl(out / "generations.jsonl", generations)
    write_json(out / "results.json", results)
    return {k: v for k, v in _flat(results).items() if k.endswith(("loss", "f1", "exact_match", "eos", "pass_rate"))}


def score(rows: list[dict]) -> dict:
    n = len(rows)
    return {
        "questions": n,
        "exact_match": round(sum(r["exact_match"] for r in rows) / n, 4),
        "f1": round(sum(r["f1"] for r in rows) / n, 4),
        "f1_pass_rate": round(sum(r["f1"] > F1_PASS for r in rows) / n, 4),
        "stopped_at_eos": round(sum(r["stopped"] for r in rows) / n, 4),
    }


def _in_part(e: Example, part: str) -> bool:
    """Halves of the knowledge questions fixed by their ids: one ranks sweep trials, the other reports."""
    from ..curate.split import unit

    return part == "all" or (unit(0, "knowledge-half", e.id) < 0.5) == (part == "select")


def _sample(examples: list[Example], k: int, rng: random.Random) -> list[Example]:
    examples = sorted(examples, key=lambda e: e.id)
    return examples if len(examples) <= k else rng.sample(examples, k)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out
