"""The numbers that matter, first: one table a reader can stop at. `headline` gives them as flat rows, so the
comparison of two runs lines the same numbers up and subtracts them."""

from __future__ import annotations

from ..runs import RunDir
from .artifacts import counts, results
from .blocks import Block, Table, label, num, ways_of
from .stages import stage_seconds

Row = tuple[str, str | None, object]  # (what, way or None, value)


def headline(run: RunDir) -> list[Row]:
    rows: list[Row] = []
    ingest, examples, curate, train = (counts(run, s) for s in ("ingest", "examples", "curate", "train"))
    rows.append(("documents", None, ingest.get("documents")))
    rows.append(("examples built", None, examples.get("examples")))
    if curate:
        rows.append(("examples trained on", None, curate.get("train")))
        rows.append(("held-out examples (val / test / knowledge / paraphrase)", None,
                     " / ".join(str(curate.get(k, "-")) for k in ("val", "test", "knowledge", "paraphrase"))))
    rows.append(("train tokens", None, train.get("tokens") or curate.get("train_tokens")))
    rows.append(("train steps", None, train.get("steps")))
    rows.append(("tokens per second", None, train.get("tokens_per_second")))
    res = results(run) or {}
    for model, r in res.get("held_out", {}).get("val", {}).items():
        rows.append(("validation loss", model, r["loss"]))
    for name, metric, shown in (("knowledge", "f1", "knowledge F1"), ("paraphrase", "f1", "paraphrase F1"),
                                ("general", "exact_match", "general exact match")):
        by_way = res.get(name, {})
        ways = ways_of(by_way)
        if name == "general" and {"base", "tuned"} <= set(ways):
            ways = ["base", "tuned"]  # forgetting is base against tuned; retrieval does not bear on it
        rows += [(shown, w, by_way[w][metric]) for w in ways]
    comparison = res.get("knowledge", {}).get("comparison")
    if comparison:
        winner = comparison.get("winner")
        rows.append(("verdict on knowledge questions", None,
                     f"{label(winner) + ' is best' if winner else 'no clear winner'} "
                     f"({comparison['questions']} questions)"))
    seconds = stage_seconds(run)
    if seconds:
        rows.append(("time, seconds (last run of each stage)", None, round(sum(seconds.values()), 1)))
    return [r for r in rows if r[2] is not None]


def summary_section(run: RunDir) -> list[Block]:
    grouped: dict[str, list[tuple[str | None, object]]] = {}
    for what, way, value in headline(run):
        grouped.setdefault(what, []).append((way, value))
    rows = []
    for what, values in grouped.items():
        ways = [w for w, _ in values]
        if ways == [None]:
            rows.append([what, num(values[0][1])])
            continue
        join = " → " if ways == ["base", "tuned"] else " / "
        rows.append([f"{what} ({join.join(label(w) for w in ways)})", join.join(num(v) for _, v in values)])
    if not rows:
        return []
    seconds = stage_seconds(run)
    blocks: list[Block] = [Table(["what", "value"], rows)]
    if seconds:
        blocks.append("Seconds per stage: " + ", ".join(f"{s} {v}" for s, v in seconds.items()) + ".")
    return blocks
