"""The sections of the stages before evaluation: ingest, build, curate, train, and export; plus a sweep's
ranked trials when the run has one."""

from __future__ import annotations

import re

from ..records import read_json
from ..runs import RunDir
from . import plots
from .artifacts import counts, jsonl, manifest, metrics, plots_dir
from .blocks import Block, Image, Pre, Table, cut, num, spread

SAMPLES = 3  # records shown per kind of example, per curation step, per skip reason


def ingest_section(run: RunDir) -> list[Block]:
    if not manifest(run, "ingest"):
        return []
    c = counts(run, "ingest")
    blocks: list[Block] = [
        f"{c['documents']} documents, {c['characters']:,} characters, {c.get('external_examples', 0)} chat "
        f"examples read as they are; {c['skipped']} files skipped."
    ]
    chunks, examples = counts(run, "chunk").get("by_source", {}), counts(run, "examples").get("by_source", {})
    names = list(c["by_source"]) + list(c.get("external_by_source", {}))
    blocks.append(Table(["source", "documents", "chunks", "examples"],
                        [[k, c["by_source"].get(k, c.get("external_by_source", {}).get(k, 0)), chunks.get(k, 0),
                          examples.get(k, 0)] for k in names]))
    blocks.append(Table(["kind", "documents"], [[k, v] for k, v in c["by_kind"].items()]))
    if c.get("skipped_by_reason"):
        blocks.append(Table(["skipped because", "files"], [[k, v] for k, v in c["skipped_by_reason"].items()]))
        path = run.stage("ingest") / "skipped.jsonl"
        if path.is_file():
            rows = list(jsonl(path))
            blocks.append("A few of the files skipped:")
            blocks.append(Table(["file", "source", "why"], [[r["path"], r.get("source", ""), r["reason"]]
                                                           for r in spread(rows, 2 * SAMPLES)]))
    redacted = c.get("redacted") or {}
    if redacted:
        kinds = sorted({k for per in redacted.values() for k in per})
        blocks.append("Redacted before anything else read the text (counts only; the values are kept nowhere):")
        blocks.append(Table(["source", *kinds], [[s, *[per.get(k, 0) for k in kinds]] for s, per in redacted.items()]))
    if c.get("dropped_for_secrets"):
        blocks.append(f"{c['dropped_for_secrets']} documents dropped because they held a secret.")
    return blocks


def build_section(run: RunDir) -> list[Block]:
    if not (manifest(run, "tokenizer") and manifest(run, "chunk") and manifest(run, "examples")):
        return []
    t, c, e = counts(run, "tokenizer"), counts(run, "chunk"), counts(run, "examples")
    base = counts(run, "base").get("from")
    blocks: list[Block] = []
    if base:
        blocks.append("No base model: built from scratch." if base == "scratch" else f"Base model: {base}.")
    blocks += [
        f"Tokenizer: {t['vocab_size']} tokens ({t['from']}); EOS `{t['eos']}`, pad `{t['pad']}`.",
        f"{c['chunks']} chunks, {c['tokens']:,} tokens, mean {c['mean_tokens']}, longest {c['max_tokens']}.",
        Table(["example kind", "examples"], [[k, v] for k, v in e["by_kind"].items()]),
    ]
    if e.get("skipped_by_step"):
        blocks.append(Table(["not made, at step", "count"], [[k, v] for k, v in e["skipped_by_step"].items()]))
    if e.get("teacher"):
        blocks.append(Table(["teacher", "value"], [[k, v] for k, v in e["teacher"].items()]))
    path = run.stage("examples") / "examples.jsonl"
    if path.is_file():
        by_kind: dict[str, list[dict]] = {}
        for row in jsonl(path):
            by_kind.setdefault(row["kind"], []).append(row)
        for kind, rows in by_kind.items():
            blocks.append(f"Sample {kind} examples:")
            blocks += [Pre(show_example(r)) for r in spread(rows, SAMPLES)]
    return blocks


def show_example(row: dict) -> str:
    if row["kind"] == "raw":
        return cut(row["text"])
    if row["kind"] == "preference":
        return (f"Q: {cut(row['prompt'][-1]['content'])}\n--- chosen:\n{cut(row['chosen'][0]['content'])}"
                f"\n--- rejected:\n{cut(row['rejected'][0]['content'])}")
    return "\n".join(f"{m['role']}: {cut(m['content'])}" for m in row["messages"])


def curate_section(run: RunDir) -> list[Block]:
    if not manifest(run, "curate"):
        return []
    folder = run.stage("curate")
    stats = read_json(folder / "stats.json")
    funnel = stats["funnel"]
    blocks: list[Block] = [
        f"{funnel[0]['in']} examples in, {funnel[-1]['out']} kept; {stats.get('train_tokens', 0):,} tokens to train "
        "on.",
        Table(["step", "in", "out", "dropped"], [[f["step"], f["in"], f["out"], f["in"] - f["out"]] for f in funnel]),
    ]
    splits = stats["by_split"]
    kinds = sorted({k for v in splits.values() for k in v})
    blocks.append(Table(["split", "documents", *kinds],
                        [[s, stats["documents_by_split"].get(s, "-"), *[splits[s].get(k, 0) for k in kinds]]
                         for s in splits]))
    tokens = stats.get("tokens_by_kind") or {}
    if tokens:
        blocks.append(Table(["tokens per example", "count", "min", "median", "p95", "max", "mean"],
                            [[k, v["count"], v["min"], v["median"], v["p95"], v["max"], v["mean"]]
                             for k, v in tokens.items()]))
    blocks.append(Image(folder / "plots" / "lengths.png", "tokens per example before and after curation"))
    excluded = folder / "excluded.jsonl"
    by_step: dict[str, list[dict]] = {}
    if excluded.is_file():
        for row in jsonl(excluded):
            by_step.setdefault(row["step"], []).append(row)
    for step, rows in by_step.items():
        blocks.append(f"Dropped by {step} ({len(rows)}), a few of them:")
        for row in spread(rows, SAMPLES):
            dup = f", duplicate of {row['duplicate_of']}" if row.get("duplicate_of") else ""
            blocks.append(Pre(f"{row['id']}: {row['reason']}{dup}\n{show_example(row['record'])}"))
    return blocks


def train_section(run: RunDir) -> list[Block]:
    m = manifest(run, "train")
    if not m:
        return []
    c = m["counts"]
    how = " ".join(str(c[k]) for k in ("method", "objective") if c.get(k))
    blocks: list[Block] = [
        f"{c['parameters'] / 1e6:.2f}M parameters ({c['trainable_parameters'] / 1e6:.2f}M trained"
        f"{', ' + how if how else ''}), {c['steps']} steps at learning rate {c['learning_rate']}, "
        f"{c['tokens']:,} tokens in {c['train_seconds']}s ({c['tokens_per_second']:,} tokens/s). "
        f"Final train loss {c['train_loss']}, validation loss {c['eval_loss']}."
    ]
    if c.get("resumed_from_step"):
        blocks.append(f"Resumed from the checkpoint at step {c['resumed_from_step']}.")
    pre = run.stage("train") / "preflight.json"
    if pre.is_file():
        p = read_json(pre)
        mem = p.get("memory_gib", {})
        parts = ", ".join(f"{k.replace('_', ' ')} {v:.3g}" for k, v in mem.items() if k != "total")
        blocks.append(f"Preflight: {p.get('precision', '-')} precision, effective batch "
                      f"{p.get('effective_batch_size', '-')}"
                      f" sequences of at most {p.get('max_length', '-')} tokens, {p.get('training_rows', '-')} rows; "
                      f"estimated memory {num(mem.get('total'), 3)} GiB ({parts}).")
    curves = plots.training_curves(metrics(run), plots_dir(run) / "training.png")
    if curves:
        blocks.append(Image(curves, "training and validation loss, learning rate and throughput against step"))
    else:  # a train stage older than metrics.jsonl still drew its own loss plot
        blocks.append(Image(run.stage("train") / "plots" / "loss.png", "training and validation loss"))
    return blocks


def export_section(run: RunDir) -> list[Block]:
    c = counts(run, "export")
    megabytes = c.get("merged_megabytes", c.get("megabytes") if c.get("merged") else None)
    if megabytes is None:
        return []
    folder = run.stage("export")
    blocks: list[Block] = [
        f"`{folder / 'merged'}` ({megabytes} MB) loads with `AutoModelForCausalLM.from_pretrained` and "
        "`AutoTokenizer.from_pretrained`; its chat template is the one used in training."]
    gguf = c.get("gguf") or {}
    if gguf:
        same = c.get("greedy_identical") or {}
        blocks.append(Table(["GGUF file", "MB", "greedy answers the same as transformers'"],
                            [[f"model-{q}.gguf", mb, same.get(q, "-")] for q, mb in gguf.items()]))
        if "tokenisation_identical" in c:
            blocks.append("llama.cpp tokenises the check strings " + (
                "exactly as the model's tokenizer does." if c["tokenisation_identical"] else
                f"differently from the model's tokenizer: see `{folder / 'checks.json'}`."))
    if c.get("modelfile"):
        blocks.append(f"{c['modelfile']}: `ollama create {run.root.name} -f {folder / 'Modelfile'}`.")
    return blocks


def sweep_section(run: RunDir) -> list[Block]:
    """The sweep's own results.md (trials ranked by its metric), its tables and plot carried over."""
    folder = run.root / "sweep"
    path = folder / "results.md"
    if not path.is_file():
        return []
    blocks: list[Block] = []
    table: list[list[str]] = []

    def flush():
        if table:
            ruled = len(table) > 1 and set(table[1][0]) <= set("-: ")  # the |---|---| line under the header
            blocks.append(Table(table[0], table[2:] if ruled else table[1:]))
            table.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            table.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
            continue
        flush()
        image = re.fullmatch(r"!\[(.*)\]\((.+)\)", line.strip())
        if image:
            blocks.append(Image(folder / image.group(2), image.group(1)))
        elif line.strip() and not line.startswith("# "):
            blocks.append(line.strip())
    flush()
    return blocks


def stage_seconds(run: RunDir) -> dict[str, float]:
    return {s: m["seconds"] for s in ("ingest", "base", "tokenizer", "chunk", "examples", "curate", "train", "eval",
                                      "export") if (m := manifest(run, s)) and "seconds" in m}

