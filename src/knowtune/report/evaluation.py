"""The Evaluate section: held-out loss, every question set answered four ways (base, base + RAG, tuned,
tuned + RAG) with the comparison's verdict in words, retrieval quality, what the base already knew, scores by
kind, example answers, forgetting, and the scores measured during training."""

from __future__ import annotations

from ..runs import RunDir
from . import plots
from .answers import examples_blocks, forgetting_blocks
from .artifacts import generations, plots_dir, results
from .blocks import (Block, Bullets, Heading, Image, Table, label, metric_label, metric_of, num, signed, ways_of,
                     WAYS)

QUESTION_SETS = ("knowledge", "paraphrase", "test", "trained", "general")
ABOUT = {
    "knowledge": "held-out facts of trained documents: did the model learn what it read?",
    "paraphrase": "trained facts asked in words the model never saw",
    "test": "questions about documents held out of training",
    "trained": "a sample of the questions it was trained on",
    "general": "forgetting probes, scored by exact match of accepted answers",
}


def eval_section(run: RunDir, shown: int) -> list[Block]:
    res = results(run)
    if not res:
        return []
    gens = generations(run)
    sets = [s for s in QUESTION_SETS if ways_of(res.get(s, {}))]
    intervals = way_intervals(gens)
    blocks = held_out_blocks(res)
    if sets:
        blocks += four_way_blocks(run, res, sets, intervals)
        blocks += retrieval_blocks(res, sets)
        blocks += known_blocks(res)
        blocks += by_kind_blocks(res, sets)
        blocks += examples_blocks(gens, sets, max(3, shown // len(sets)))
        blocks += forgetting_blocks(res, gens)
    blocks += during_blocks(run, res)
    return blocks


def held_out_blocks(res: dict) -> list[Block]:
    held = res.get("held_out", {})
    rows = [[split, model, r["loss"], r["perplexity"], r["unigram_loss"], r["gain_over_unigram"], r["examples"]]
            for split, by_model in held.items() for model, r in by_model.items()]
    if not rows:
        return []
    blocks: list[Block] = [
        Heading("Held-out documents"),
        "Loss per token on whole documents held out of training, against a unigram model of the training "
        "tokens (gain: how many nats per token better than it).",
        Table(["held-out documents", "model", "loss", "perplexity", "unigram loss", "gain (nats)", "examples"], rows)]
    val = held.get("val", {})
    if "base" in val and "tuned" in val:
        blocks.append(f"Validation loss base → tuned: {val['base']['loss']} → {val['tuned']['loss']} "
                      f"({signed(val['tuned']['loss'] - val['base']['loss'], 4)}).")
    by_kind = res.get("held_out_by_kind", {})
    rows = [[kind, split, model, r["loss"], r["perplexity"], r["gain_over_unigram"], r["examples"]]
            for kind, by_split in by_kind.items() for split, by_model in by_split.items()
            for model, r in by_model.items()]
    if rows:
        blocks.append(Table(["kind of document", "split", "model", "loss", "perplexity", "gain (nats)", "examples"],
                            rows))
    return blocks


def way_intervals(gens: list[dict]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Per set and way, the mean score over its questions and a 95% bootstrap interval (from generations.jsonl:
    the comparison gives intervals for differences between ways, not for each way)."""
    scores: dict[str, dict[str, list[float]]] = {}
    for g in gens:
        scores.setdefault(g["set"], {}).setdefault(g.get("model", "tuned"), []).append(g[metric_of(g["set"])])
    return {s: {w: plots.mean_interval(v) for w, v in by_way.items() if v} for s, by_way in scores.items()}


def four_way_blocks(run: RunDir, res: dict, sets: list[str], intervals: dict) -> list[Block]:
    blocks: list[Block] = [
        Heading("Questions, four ways"),
        "Each question set is answered by every way the run has, with the same chat template and greedy "
        "decoding: the base model, the base model with passages retrieved from the trained documents (RAG), the "
        "tuned model, and the tuned model with retrieval.",
    ]
    bars = {}
    for name in sets:
        metric = metric_of(name)
        by_way = {w: res[name][w] for w in ways_of(res[name])}
        known = intervals.get(name, {})
        bars[name] = {w: (r[metric], *known.get(w, (None, None, None))[1:]) for w, r in by_way.items()}
    path = plots.four_ways(bars, plots_dir(run) / "four_ways.png")
    if path:
        blocks.append(Image(path, "score per question set and way (F1; exact match for general questions); error "
                                  "bars: 95% bootstrap interval of each way's mean over its questions"))
    for name in sets:
        blocks += set_blocks(name, res[name], intervals.get(name, {}))
    return blocks


def set_blocks(name: str, by_way: dict, intervals: dict) -> list[Block]:
    ways = ways_of(by_way)
    metric = metric_of(name)
    n = by_way[ways[0]]["questions"]
    rows = [["questions", *[by_way[w]["questions"] for w in ways]],
            ["exact match", *[by_way[w]["exact_match"] for w in ways]],
            ["F1", *[by_way[w]["f1"] for w in ways]]]
    if intervals:
        rows.append([f"{metric_label(metric)}, 95% interval",
                     *[f"{intervals[w][1]:.2f} to {intervals[w][2]:.2f}" if w in intervals else "-" for w in ways]])
    rows += [["ROUGE-L", *[by_way[w].get("rouge_l") for w in ways]],
             ["F1 > 0.5", *[by_way[w].get("f1_pass_rate") for w in ways]],
             ["stopped at EOS", *[by_way[w].get("stopped_at_eos") for w in ways]]]
    if any("judge_accuracy" in by_way[w] for w in ways):
        rows.append(["judge accuracy", *[by_way[w].get("judge_accuracy") for w in ways]])
        rows.append(["judged (not judged)", *[f"{by_way[w].get('judged', '-')} ({by_way[w].get('unjudged', 0)})"
                                              for w in ways]])
    blocks: list[Block] = [f"**{name}** ({n} questions): {ABOUT.get(name, '')}",
                           Table([f"{name}", *[label(w) for w in ways]], rows)]
    comparison = by_way.get("comparison")
    if comparison:
        blocks.append(verdict(comparison))
        blocks.append(Bullets([pair_sentence(p, metric, comparison["questions"]) for p in comparison["pairs"]]))
    return blocks


def verdict(comparison: dict) -> str:
    winner = comparison.get("winner")
    said = f"{label(winner)} is best" if winner else "no clear winner"
    return (f"Verdict: **{said}** ({comparison['questions']} questions, 95% paired bootstrap intervals; a "
            "difference whose interval holds zero is not called).")


def pair_sentence(pair: dict, metric: str, questions: int) -> str:
    """'tuned vs base: +0.12 F1 (95% interval +0.05 to +0.19, 48 questions)': the later way first, so a gain
    from tuning or retrieval reads as a positive number."""
    a, b, diff, low, high = pair["a"], pair["b"], pair["difference"], pair["low"], pair["high"]
    rank = lambda w: WAYS.index(w) if w in WAYS else len(WAYS)  # noqa: E731
    if rank(a) < rank(b):
        a, b, diff, low, high = b, a, -diff, -high, -low
    said = (f"{label(pair['better'])} is better" if pair.get("better")
            else "the interval holds zero: no clear difference")
    return (f"{label(a)} vs {label(b)}: {signed(diff)} {metric_label(metric)} (95% interval {signed(low)} to "
            f"{signed(high)}, {questions} questions); {said}")


def retrieval_blocks(res: dict, sets: list[str]) -> list[Block]:
    rows = [[name, r["k"], r["questions"], r["hit_at_k"], r.get("passages_dropped_for_context", 0)]
            for name in sets if (r := res[name].get("retrieval")) and r.get("questions")]
    if not rows:
        return []
    return [Heading("Retrieval"),
            "hit@k: how often the chunk a question's answer came from was among the k passages retrieved for it "
            "(questions whose source chunk is known). Passages dropped: questions where some retrieved text did not "
            "fit the model's context.",
            Table(["questions", "k", "with a known source", "hit@k", "passages dropped for context"], rows)]


def known_blocks(res: dict) -> list[Block]:
    known = res.get("knowledge", {}).get("known_before")
    if not known:
        return []
    total = known["known"] + known["unknown"]
    text = (f"The base model already answered {known['known']} of {total} knowledge questions (F1 above "
            f"{known['threshold_f1']}, closed book); on the other {known['unknown']} the tuned model gained "
            f"{signed(known['tuned_gain_on_unknown'])} F1.")
    if known.get("tuned_f1_on_known") is not None:
        text += f" On the ones the base knew, the tuned model scores F1 {known['tuned_f1_on_known']}."
    return [Heading("What the base model already knew"), text]


def by_kind_blocks(res: dict, sets: list[str]) -> list[Block]:
    blocks: list[Block] = []
    for name in sets:
        ways = [w for w in ways_of(res[name]) if res[name][w].get("by_kind")]
        if not ways:
            continue
        kinds = list(dict.fromkeys(k for w in ways for k in res[name][w]["by_kind"]))
        rows = [[k, max(res[name][w]["by_kind"].get(k, {}).get("questions", 0) for w in ways),
                 *[res[name][w]["by_kind"].get(k, {}).get("f1") for w in ways]] for k in kinds]
        blocks.append(Table([f"{name}: kind", "questions", *[label(w) for w in ways]], rows))
    if not blocks:
        return []
    return [Heading("By kind of example"),
            "F1 by kind of question: templated instructions (instruction) against question-answer pairs (qa); for "
            "general questions, exact match by topic.", *blocks]


def during_blocks(run: RunDir, res: dict) -> list[Block]:
    rows = [r for r in res.get("during_training") or [] if "step" in r]
    if not rows:
        return []
    path = plots.during_training(rows, plots_dir(run) / "during_training.png")
    blocks: list[Block] = [Heading("During training"),
                           "Knowledge questions and general questions asked every few steps while training, on a "
                           "sample of each: where knowledge stops rising, or general answers start to fall, is "
                           "where to stop."]
    if path:
        blocks.append(Image(path, "knowledge F1 and general exact match against step"))
    scored = [r for r in rows if r.get("knowledge_f1") is not None]
    if scored:
        best = max(scored, key=lambda r: (r["knowledge_f1"], -r["step"]))
        text = f"Knowledge F1 was highest at step {best['step']} ({best['knowledge_f1']})"
        if best.get("general_exact_match") is not None:
            text += f", where general exact match was {best['general_exact_match']}"
        blocks.append(text + f"; at the last evaluation (step {rows[-1]['step']}) knowledge F1 was "
                             f"{num(rows[-1].get('knowledge_f1'))}, general exact match "
                             f"{num(rows[-1].get('general_exact_match'))}.")
    blocks.append(Table(["step", "knowledge F1", "general exact match"],
                        [[r["step"], r.get("knowledge_f1"), r.get("general_exact_match")] for r in rows]))
    return blocks
