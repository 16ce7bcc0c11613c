"""One report per run, built from per-stage sections (as nanochat does), as Markdown and as one HTML file.

Sections read only what the stages wrote (manifests, stats, results), so the
report can be rebuilt at any time and never disagrees with the artifacts.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

from .records import atomic_write, read_json
from .runs import RunDir, read_manifest

SHOWN_CHARS = 400
SAMPLES_PER_KIND = 3


@dataclass
class Table:
    header: list[str]
    rows: list[list]


@dataclass
class Image:
    path: Path
    alt: str


@dataclass
class Pre:
    text: str


Block = str | Table | Image | Pre


def write_report(run: RunDir, name: str, shown_generations: int = 10) -> tuple[Path, Path]:
    sections = [
        ("Summary", summary_section(run)),
        ("Ingest", ingest_section(run)),
        ("Build", build_section(run)),
        ("Curate", curate_section(run)),
        ("Train", train_section(run)),
        ("Evaluate", eval_section(run, shown_generations)),
        ("Export", export_section(run)),
    ]
    sections = [(title, blocks) for title, blocks in sections if blocks]
    md_path, html_path = run.root / "report.md", run.root / "report.html"
    atomic_write(md_path, to_markdown(f"knowtune report: {name}", sections, run.root))
    atomic_write(html_path, to_html(f"knowtune report: {name}", sections))
    return md_path, html_path


def _m(run: RunDir, stage: str) -> dict | None:
    return read_manifest(run.stage(stage))


def summary_section(run: RunDir) -> list[Block]:
    rows = []
    add = lambda label, stage, key: rows.append([label, _get(_m(run, stage), key)])  # noqa: E731
    add("documents", "ingest", "counts.documents")
    add("chunks", "chunk", "counts.chunks")
    add("examples built", "examples", "counts.examples")
    add("examples after curation (train / val / test / knowledge)", "curate", None)
    c = (_m(run, "curate") or {}).get("counts", {})
    rows[-1][1] = " / ".join(str(c.get(k, "-")) for k in ("train", "val", "test", "knowledge")) if c else "-"
    add("parameters", "train", "counts.parameters")
    add("trained tokens", "train", "counts.tokens")
    add("tokens per second", "train", "counts.tokens_per_second")
    res = _results(run)
    if res:
        val = res.get("val", {})
        rows.append(["validation loss (unigram baseline)", f"{val.get('loss', '-')} ({val.get('unigram_loss', '-')})"])
        for name in ("knowledge", "trained"):
            if name in res:
                r = res[name]
                rows.append([f"{name} questions: F1 / exact match / F1>0.5", f"{r['f1']} / {r['exact_match']} / {r['f1_pass_rate']}"])
        rows.append(["generations that stop at EOS", res.get("stopped_at_eos", "-")])
    seconds = sum((_m(run, s) or {}).get("seconds", 0) for s in ("ingest", "tokenizer", "chunk", "examples", "curate", "train", "eval", "export"))
    rows.append(["stage time, seconds (last runs)", round(seconds, 1)])
    return [Table(["what", "value"], rows)]


def ingest_section(run: RunDir) -> list[Block]:
    m = _m(run, "ingest")
    if not m:
        return []
    c = m["counts"]
    blocks: list[Block] = [
        f"{c['documents']} documents, {c['characters']:,} characters, {c.get('external_examples', 0)} chat "
        f"examples read as they are; {c['skipped']} files skipped."
    ]
    chunks = (_m(run, "chunk") or {}).get("counts", {}).get("by_source", {})
    examples = (_m(run, "examples") or {}).get("counts", {}).get("by_source", {})
    names = list(c["by_source"]) + list(c.get("external_by_source", {}))
    blocks.append(Table(["source", "documents", "chunks", "examples"],
                        [[k, c["by_source"].get(k, 0), chunks.get(k, 0), examples.get(k, 0)] for k in names]))
    blocks.append(Table(["kind", "documents"], [[k, v] for k, v in c["by_kind"].items()]))
    if c["skipped_by_reason"]:
        blocks.append(Table(["skipped because", "files"], [[k, v] for k, v in c["skipped_by_reason"].items()]))
    redacted = c.get("redacted") or {}
    if redacted:
        kinds = sorted({k for per in redacted.values() for k in per})
        blocks.append("Redacted before anything else read the text (counts only; the values are kept nowhere):")
        blocks.append(Table(["source", *kinds], [[s, *[per.get(k, 0) for k in kinds]] for s, per in redacted.items()]))
    if c.get("dropped_for_secrets"):
        blocks.append(f"{c['dropped_for_secrets']} documents dropped because they held a secret.")
    return blocks


def build_section(run: RunDir) -> list[Block]:
    tok, chunk, ex = _m(run, "tokenizer"), _m(run, "chunk"), _m(run, "examples")
    if not (tok and chunk and ex):
        return []
    t, c, e = tok["counts"], chunk["counts"], ex["counts"]
    blocks: list[Block] = [
        f"Tokenizer: {t['vocab_size']} tokens ({t['from']}); EOS `{t['eos']}`, pad `{t['pad']}`.",
        f"{c['chunks']} chunks, {c['tokens']:,} tokens, mean {c['mean_tokens']}, longest {c['max_tokens']}.",
        Table(["example kind", "examples"], [[k, v] for k, v in e["by_kind"].items()]),
    ]
    if e.get("skipped_by_step"):
        blocks.append(Table(["not made, at step", "count"], [[k, v] for k, v in e["skipped_by_step"].items()]))
    usage = e.get("teacher")
    if usage:
        blocks.append(Table(["teacher", "value"], [[k, v] for k, v in usage.items()]))
    path = run.stage("examples") / "examples.jsonl"
    if path.is_file():
        by_kind: dict[str, list[dict]] = {}
        for row in _jsonl(path):
            by_kind.setdefault(row["kind"], []).append(row)
        for kind, rows in by_kind.items():
            blocks.append(f"Sample {kind} examples:")
            blocks += [Pre(_show_example(r)) for r in _spread(rows, SAMPLES_PER_KIND)]
    return blocks


def _show_example(row: dict) -> str:
    if row["kind"] == "raw":
        return _cut(row["text"])
    if row["kind"] == "preference":
        return (f"Q: {_cut(row['prompt'][-1]['content'])}\n--- chosen:\n{_cut(row['chosen'][0]['content'])}"
                f"\n--- rejected:\n{_cut(row['rejected'][0]['content'])}")
    return "\n".join(f"{m['role']}: {_cut(m['content'])}" for m in row["messages"])


def _jsonl(path: Path):
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def curate_section(run: RunDir) -> list[Block]:
    folder = run.stage("curate")
    if not _m(run, "curate"):
        return []
    stats = read_json(folder / "stats.json")
    blocks: list[Block] = [Table(["step", "in", "out", "dropped"],
                                 [[f["step"], f["in"], f["out"], f["in"] - f["out"]] for f in stats["funnel"]])]
    splits = stats["by_split"]
    kinds = sorted({k for v in splits.values() for k in v})
    blocks.append(Table(["split", "documents", *kinds],
                        [[s, stats["documents_by_split"][s], *[splits[s].get(k, 0) for k in kinds]] for s in splits]))
    blocks.append(Image(folder / "plots" / "lengths.png", "tokens per example before and after curation"))
    excluded = folder / "excluded.jsonl"
    by_step: dict[str, list[dict]] = {}
    if excluded.is_file():
        for row in _jsonl(excluded):
            by_step.setdefault(row["step"], []).append(row)
    for step, rows in by_step.items():
        blocks.append(f"Dropped by {step} ({len(rows)}), a few of them:")
        for row in _spread(rows, SAMPLES_PER_KIND):
            dup = f", duplicate of {row['duplicate_of']}" if row.get("duplicate_of") else ""
            blocks.append(Pre(f"{row['id']}: {row['reason']}{dup}\n{_show_example(row['record'])}"))
    return blocks


def train_section(run: RunDir) -> list[Block]:
    m = _m(run, "train")
    if not m:
        return []
    c = m["counts"]
    return [
        f"{c['parameters'] / 1e6:.2f}M parameters ({c['trainable_parameters'] / 1e6:.2f}M trained), {c['steps']} steps "
        f"at learning rate {c['learning_rate']}, {c['tokens']:,} tokens in {c['train_seconds']}s "
        f"({c['tokens_per_second']:,} tokens/s). Final train loss {c['train_loss']}, validation loss {c['eval_loss']}.",
        Image(run.stage("train") / "plots" / "loss.png", "training and validation loss"),
    ]


def eval_section(run: RunDir, shown: int) -> list[Block]:
    res = _results(run)
    if not res:
        return []
    blocks: list[Block] = []
    rows = [[s, r["loss"], r["perplexity"], r["unigram_loss"], r["gain_over_unigram"]] for s, r in res.items()
            if s in ("val", "test")]
    if rows:
        blocks.append(Table(["held-out documents", "loss", "perplexity", "unigram loss", "gain (nats)"], rows))
    rows = [[s, r["questions"], r["exact_match"], r["f1"], r["f1_pass_rate"], r["stopped_at_eos"]]
            for s, r in res.items() if s in ("knowledge", "trained")]
    if rows:
        blocks.append(Table(["questions", "n", "exact match", "F1", "F1 > 0.5", "stop at EOS"], rows))
    path = run.stage("eval") / "generations.jsonl"
    gens = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    if gens:
        blocks.append(f"{min(shown, len(gens))} sample generations (greedy):")
        for g in _spread(gens, shown):
            blocks.append(Pre(
                f"[{g['set']}] Q: {g['question']}\n--- reference:\n{_cut(g['reference'])}\n"
                f"--- model (F1 {g['f1']}, {'stopped' if g['stopped'] else 'ran out of tokens'}):\n{_cut(g['generation'])}"
            ))
    return blocks


def export_section(run: RunDir) -> list[Block]:
    m = _m(run, "export")
    if not m or not m["counts"].get("merged"):
        return []
    return [f"`{run.stage('export') / 'merged'}` ({m['counts']['megabytes']} MB) loads with "
            "`AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`; its chat template is the "
            "one used in training."]


def _results(run: RunDir) -> dict | None:
    path = run.stage("eval") / "results.json"
    return read_json(path) if _m(run, "eval") and path.is_file() else None


def _get(manifest: dict | None, key: str | None):
    if manifest is None or key is None:
        return "-"
    node = manifest
    for part in key.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if node != {} else "-"


def _spread(rows: list[dict], k: int) -> list[dict]:
    if len(rows) <= k:
        return rows
    step = len(rows) / k
    return [rows[int(i * step)] for i in range(k)]


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + " [...]"


# --- rendering ---------------------------------------------------------------


def to_markdown(title: str, sections: list[tuple[str, list[Block]]], root: Path) -> str:
    out = [f"# {title}", ""]
    for heading, blocks in sections:
        out += [f"## {heading}", ""]
        for b in blocks:
            if isinstance(b, Table):
                out.append("| " + " | ".join(b.header) + " |")
                out.append("|" + "---|" * len(b.header))
                out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in b.rows]
            elif isinstance(b, Image):
                if b.path.is_file():
                    out.append(f"![{b.alt}]({b.path.relative_to(root).as_posix()})")
            elif isinstance(b, Pre):
                out += ["```", b.text.replace("```", "'''"), "```"]
            else:
                out.append(b)
            out.append("")
    return "\n".join(out)


def to_html(title: str, sections: list[tuple[str, list[Block]]]) -> str:
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_CSS}</style>"
           f"</head><body><h1>{e(title)}</h1>"]
    for heading, blocks in sections:
        out.append(f"<h2>{e(heading)}</h2>")
        for b in blocks:
            if isinstance(b, Table):
                out.append("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in b.header) + "</tr>")
                out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in b.rows]
                out.append("</table>")
            elif isinstance(b, Image):
                if b.path.is_file():
                    data = base64.b64encode(b.path.read_bytes()).decode()
                    out.append(f"<img alt='{e(b.alt)}' src='data:image/png;base64,{data}'>")
            elif isinstance(b, Pre):
                out.append(f"<pre>{e(b.text)}</pre>")
            else:
                out.append(f"<p>{e(b)}</p>")
    out.append("</body></html>")
    return "\n".join(out)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}"
    "pre{background:#f6f6f6;padding:.6rem;white-space:pre-wrap;font-size:.85rem}img{max-width:100%}"
)
