"""The report holds a section for every stage, and each shows the numbers that stage recorded.

One test runs the real pipeline; the others read a run directory written by `make_run` below: every stage's
artifacts in the schema the stages write, with the evaluation scored by knowtune's own metrics and
comparison from invented answers, so the numbers hang together without training a model."""

import json
import random
import re
from pathlib import Path

import pytest

from test_pipeline import QUICK, knowtune, setup

ALL_WAYS = ("base", "base_rag", "tuned", "tuned_rag")
LABELS = {"base": "base", "base_rag": "base + RAG", "tuned": "tuned", "tuned_rag": "tuned + RAG"}
SETS = {"knowledge": 40, "paraphrase": 20, "test": 20, "trained": 20, "general": 40}
# how often each way answers right, per set: tuning should help on knowledge, and cost a little on general
RIGHT = {
    "base": {"knowledge": 0.1, "paraphrase": 0.1, "test": 0.1, "trained": 0.1, "general": 0.65},
    "base_rag": {"knowledge": 0.5, "paraphrase": 0.45, "test": 0.2, "trained": 0.5, "general": 0.6},
    "tuned": {"knowledge": 0.6, "paraphrase": 0.45, "test": 0.15, "trained": 0.9, "general": 0.45},
    "tuned_rag": {"knowledge": 0.75, "paraphrase": 0.6, "test": 0.25, "trained": 0.9, "general": 0.45},
}
SERVICES = ["ledger", "ventd", "mistd", "alarmd", "vault", "relay", "gauge", "archive"]


def manifest(run, folder):
    return json.loads((run / folder / "manifest.json").read_text())


def sections_of(md: str) -> dict[str, str]:
    """Section title -> its text; a '## ' inside a fenced block (a sample document) is not a section."""
    sections, fenced, title = {}, False, None
    for line in md.splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("## ") and not fenced:
            title = line[3:]
            sections[title] = ""
        if title:
            sections[title] += line + "\n"
    return sections


def cell(value) -> str:
    return f"{value:,}" if isinstance(value, int) and value >= 10_000 else str(value)


def row(*cells) -> str:
    return "| " + " | ".join(cell(c) for c in cells) + " |"


# --- a run directory without training a model ----------------------------------------------------------------


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def _jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _stage(run: Path, folder: str, counts: dict, seconds: float) -> None:
    _write(run / folder / "manifest.json", {"stage": folder, "counts": counts, "seconds": seconds,
                                            "outputs": {}, "output_hash": "0" * 16})


def _png(path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [3, 1, 2])
    ax.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=50)
    plt.close(fig)


def _questions(rng: random.Random, set_name: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        if set_name == "general":
            a, b = rng.randint(2, 40), rng.randint(2, 40)
            out.append({"id": f"general-{i:03d}", "kind": ("arithmetic", "everyday")[i % 2],
                        "question": f"What is {a} plus {b}? Answer in a few words.", "reference": str(a + b)})
            continue
        service, port = rng.choice(SERVICES), rng.randint(1000, 9999)
        out.append({"id": f"{set_name}-{i:03d}", "kind": ("qa", "qa", "instruction")[i % 3],
                    "question": f"Which port does {service} number {i} of the {set_name} set listen on?",
                    "reference": f"{service} listens on port {port} and writes its log to /var/log/{service}.log"})
    return out


def _answers(rng: random.Random, ways, judge: bool) -> list[dict]:
    from knowtune.evaluate.metrics import exact_match, f1, rouge_l

    rows = []
    for set_name, n in SETS.items():
        for q in _questions(rng, set_name, n):
            ease = rng.random()  # an easy question is easy for every way
            for way in ways:
                right = 0.6 * ease + 0.4 * rng.random() < RIGHT[way][set_name]
                if set_name == "general":
                    text = q["reference"] if right else str(int(q["reference"]) + 1)
                    em = score = rouge = float(right)
                else:
                    words = q["reference"].split()
                    text = q["reference"] if right else " ".join(words[: rng.randint(0, len(words) // 2)])
                    em, score, rouge = exact_match(text, q["reference"]), round(f1(text, q["reference"]), 4), round(
                        rouge_l(text, q["reference"]), 4)
                row = {"set": set_name, "id": q["id"], "model": way, "kind": q["kind"], "question": q["question"],
                       "reference": q["reference"], "generation": text, "stopped": right or rng.random() < 0.7,
                       "new_tokens": len(text.split()), "exact_match": em, "f1": score, "rouge_l": rouge}
                if way.endswith("_rag"):
                    row["retrieved"], row["passages_dropped"] = [f"chunk-{rng.randint(0, 39)}" for _ in range(3)], 0
                if judge and set_name == "knowledge":
                    verdict = "correct" if score > 0.5 else "wrong"
                    row["judge"] = {"verdict": verdict, "reason": f"the answer is {verdict}"}
                rows.append(row)
    return rows


def _results(rows: list[dict], ways, judge: bool, during: bool) -> dict:
    from knowtune.evaluate import known_split, score
    from knowtune.evaluate.compare import compare

    held = lambda loss: {"loss": loss, "perplexity": round(2.718281828 ** loss, 2), "unigram_loss": 6.1,  # noqa: E731
                         "gain_over_unigram": round(6.1 - loss, 4), "examples": 24}
    models = [m for m in ("base", "tuned") if m in ways]
    losses = {"base": 3.2061, "tuned": 2.4517}
    res: dict = {"held_out": {s: {m: held(losses[m] + (0.05 if s == "test" else 0)) for m in models}
                              for s in ("val", "test")},
                 "held_out_by_kind": {k: {"val": {m: held(losses[m] + d) for m in models}}
                                      for k, d in (("code", 0.11), ("doc", -0.07), ("change", 0.02))}}
    for set_name in SETS:
        mine = [r for r in rows if r["set"] == set_name]
        by_way = {w: [r for r in mine if r["model"] == w] for w in ways}
        res[set_name] = {w: score(rs) for w, rs in by_way.items()}
        if judge and set_name == "knowledge":
            for w, rs in by_way.items():
                judged = [r for r in rs if "judge" in r]
                res[set_name][w].update(judge_accuracy=round(sum(r["judge"]["verdict"] == "correct" for r in judged)
                                                             / len(judged), 4), judged=len(judged), unjudged=0)
        metric = "exact_match" if set_name == "general" else "f1"
        res[set_name]["comparison"] = compare({w: {r["id"]: r[metric] for r in rs} for w, rs in by_way.items()})
        if set_name != "general":
            res[set_name]["retrieval"] = {"k": 3, "questions": len(by_way[ways[-1]]), "hit_at_k": 0.675,
                                          "passages_dropped_for_context": 1}
    if "base" in ways:
        res["knowledge"]["known_before"] = known_split([r for r in rows if r["set"] == "knowledge"])
    if during:
        res["during_training"] = [{"step": s, "knowledge_f1": f, "general_exact_match": g}
                                  for s, f, g in ((10, 0.21, 0.62), (20, 0.43, 0.58), (30, 0.57, 0.51),
                                                  (40, 0.55, 0.45))]
    return res


def make_run(runs: Path, name: str = "fake", ways=ALL_WAYS, judge: bool = True, during: bool = True,
             sweep: bool = True, seed: int = 7, learning_rate: float = 2e-4) -> Path:
    """A finished run directory, runs/<name>, holding what every stage writes."""
    rng = random.Random(seed)
    run = runs / name
    (run / "config.yaml").parent.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(f"name: {name}\nruns_dir: {runs}\nsources:\n  - {{type: repo, path: {runs}}}\n"
                                     f"train:\n  learning_rate: {learning_rate}\n")
    _stage(run, "documents", {
        "documents": 12, "external_examples": 0, "skipped": 2, "characters": 34567,
        "by_kind": {"code": 5, "doc": 4, "change": 3}, "by_source": {"repo:acme": 9, "git:acme": 3},
        "external_by_source": {}, "skipped_by_reason": {"binary file": 1, "larger than max_file_bytes": 1},
        "redacted": {"git:acme": {"email": 3, "person": 3}}, "dropped_for_secrets": 0}, 0.41)
    _jsonl(run / "documents" / "skipped.jsonl", [
        {"path": "docs/logo.png", "reason": "binary file", "source": "repo:acme"},
        {"path": "data/dump.sql", "reason": "larger than max_file_bytes", "source": "repo:acme"}])
    _stage(run, "base", {"from": "smollm2-135m-instruct" if "base" in ways else "scratch"}, 3.5)
    _stage(run, "tokenizer", {"vocab_size": 49152, "eos": "<|im_end|>", "pad": "<|endoftext|>",
                              "from": "the base model"}, 0.2)
    _stage(run, "chunks", {"chunks": 40, "documents": 12, "tokens": 12345, "max_tokens": 320, "mean_tokens": 150.2,
                           "by_source": {"repo:acme": 31, "git:acme": 9}}, 1.2)
    _stage(run, "examples", {"examples": 300, "by_kind": {"raw": 40, "instruction": 60, "qa": 200},
                             "by_source": {"repo:acme": 250, "git:acme": 50}, "skipped": 3,
                             "skipped_by_step": {"qa": 3}}, 0.9)
    funnel = [{"step": "quality", "in": 300, "out": 291}, {"step": "near_dedup", "in": 291, "out": 280},
              {"step": "decontaminate", "in": 280, "out": 262}]
    _stage(run, "dataset", {"examples": 262, "dropped": 38, "train": 170, "val": 24, "test": 24, "knowledge": 40,
                            "paraphrase": 20, "train_tokens": 45678}, 2.3)
    _write(run / "dataset" / "stats.json", {
        "examples": 262, "funnel": funnel, "train_tokens": 45678,
        "by_split": {"train": {"raw": 30, "instruction": 40, "qa": 100}, "val": {"raw": 4, "qa": 20},
                     "test": {"raw": 4, "qa": 20}, "knowledge": {"qa": 40}},
        "documents_by_split": {"train": 9, "val": 1, "test": 2, "knowledge": 9},
        "tokens_by_kind": {"qa": {"count": 160, "min": 20, "median": 60, "p95": 150, "max": 200, "mean": 70.5,
                                  "total": 11280}}})
    _jsonl(run / "dataset" / "excluded.jsonl", [
        {"id": f"x{i}", "step": step, "reason": f"dropped by {step}", "record": {
            "id": f"x{i}", "kind": "qa", "messages": [{"role": "user", "content": f"question {i}?"},
                                                      {"role": "assistant", "content": f"answer {i}"}]}}
        for i, step in enumerate(["quality", "quality", "decontaminate"])])
    _png(run / "dataset" / "plots" / "lengths.png", "lengths")
    steps = 40
    _stage(run, "train", {"parameters": 134515008, "trainable_parameters": 921600, "method": "lora",
                          "objective": "sft", "steps": steps, "resumed_from_step": 0, "train_loss": 2.1034,
                          "eval_loss": 2.4517, "tokens": 45678, "tokens_per_second": 812.4, "train_seconds": 56.2,
                          "learning_rate": learning_rate, "examples": 170, "rows": 90}, 61.0)
    metrics = []
    for step in range(1, steps + 1):
        if step % 5 == 0:
            metrics.append({"step": step, "seconds": 1.4 * step, "tokens": 1142 * step, "loss": 3.4 - 0.03 * step,
                            "learning_rate": learning_rate * (1 - step / steps)})
        if step % 10 == 0:
            metrics.append({"step": step, "seconds": 1.4 * step + 0.5, "tokens": 1142 * step,
                            "eval_loss": 3.3 - 0.02 * step})
    _jsonl(run / "train" / "metrics.jsonl", metrics)
    _png(run / "train" / "plots" / "loss.png", "loss")
    _write(run / "train" / "preflight.json", {"parameters": 134515008, "trainable_parameters": 921600,
                                              "precision": "bf16", "memory_gib": {"weights": 0.25, "total": 1.5},
                                              "effective_batch_size": 8, "steps": steps, "training_rows": 90,
                                              "max_length": 512})
    rows = _answers(rng, ways, judge)
    results = _results(rows, ways, judge, during)
    _stage(run, "eval", {"val_loss": results["held_out"]["val"]["tuned"]["loss"]}, 120.5)
    _write(run / "eval" / "results.json", results)
    _jsonl(run / "eval" / "generations.jsonl", rows)
    _stage(run, "export", {"merged_megabytes": 270.1, "gguf": {"f16": 270.0, "q8_0": 144.0},
                           "tokenisation_identical": True, "greedy_identical": {"f16": "5/5", "q8_0": "4/5"},
                           "modelfile": "Modelfile with the chatml template"}, 4.2)
    if sweep:
        (run / "sweep").mkdir()
        (run / "sweep" / "results.md").write_text(
            "# Sweep\n\n3 trials (grid), ranked by val_loss, lowest first.\n\n"
            "| rank | trial | train.learning_rate | val_loss | knowledge_f1 |\n|---|---|---|---|---|\n"
            "| 1 | **trial-1** (best) | 0.0002 | 2.4517 | 0.5 |\n| 2 | trial-0 | 0.0001 | 2.6103 | 0.41 |\n"
            "| 3 | trial-2 | 0.001 | 2.9822 | 0.2 |\n\n![metric by setting](plot.png)\n")
        _png(run / "sweep" / "plot.png", "sweep")
    return run


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """The fake run and its report, written once for the tests that only read them."""
    from knowtune.report import write_report
    from knowtune.runs import RunDir

    run = make_run(tmp_path_factory.mktemp("report") / "runs")
    md, page = write_report(RunDir(run), "fake")
    return run, md.read_text(), page.read_text()


# --- the real pipeline ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_report_shows_each_stage_with_its_own_numbers(tmp_path):
    _, cfg = setup(tmp_path, QUICK)
    knowtune("run", cfg)
    run = tmp_path / "runs" / "tiny"
    md = (run / "report.md").read_text()
    page = (run / "report.html").read_text()
    named = sections_of(md)
    assert {"Summary", "Ingest", "Build", "Curate", "Train", "Evaluate", "Export"} <= set(named), list(named)

    ingest = manifest(run, "documents")["counts"]
    for kind, n in ingest["by_kind"].items():
        assert row(kind, n) in named["Ingest"]
    chunks = manifest(run, "chunks")["counts"]
    assert f"{chunks['chunks']} chunks, {chunks['tokens']:,} tokens" in named["Build"]
    for kind, n in manifest(run, "examples")["counts"]["by_kind"].items():
        assert row(kind, n) in named["Build"]
    stats = json.loads((run / "dataset" / "stats.json").read_text())
    for step in stats["funnel"]:
        assert row(step["step"], step["in"], step["out"], step["in"] - step["out"]) in named["Curate"]
    train = manifest(run, "train")["counts"]
    assert f"{train['steps']} steps" in named["Train"] and f"validation loss {train['eval_loss']}" in named["Train"]
    results = json.loads((run / "eval" / "results.json").read_text())
    val = results["held_out"]["val"]["tuned"]
    assert f"| val | tuned | {val['loss']} |" in named["Evaluate"]
    ways = [w for w in ALL_WAYS if w in results["trained"]]
    assert row("trained", *[LABELS[w] for w in ways]) in named["Evaluate"]
    assert row("exact match", *[results["trained"][w]["exact_match"] for w in ways]) in named["Evaluate"]
    assert f"validation loss (tuned) | {val['loss']}" in named["Summary"]
    assert str(run / "export" / "merged") in named["Export"]
    # the page says the same, images inside it
    assert f"<td>{val['loss']}</td>" in page and page.count("data:image/png;base64,") >= 3


# --- a run with every way of answering ------------------------------------------------------------------------


def test_every_section_is_there_in_order_with_the_summary_first(fake_run):
    _, md, _ = fake_run
    assert list(sections_of(md)) == ["Summary", "Ingest", "Build", "Curate", "Train", "Evaluate", "Sweep", "Export"]


def test_the_summary_holds_the_numbers_that_matter(fake_run):
    run, md, _ = fake_run
    summary = sections_of(md)["Summary"]
    res = json.loads((run / "eval" / "results.json").read_text())
    train = manifest(run, "train")["counts"]
    assert row("documents", 12) in summary and row("examples built", 300) in summary
    assert row("train tokens", train["tokens"]) in summary and row("tokens per second", 812.4) in summary
    val = res["held_out"]["val"]
    assert row("validation loss (base → tuned)", f"{val['base']['loss']} → {val['tuned']['loss']}") in summary
    for name, shown in (("knowledge", "knowledge F1"), ("paraphrase", "paraphrase F1")):
        assert row(f"{shown} (base / base + RAG / tuned / tuned + RAG)",
                   " / ".join(str(res[name][w]["f1"]) for w in ALL_WAYS)) in summary
    general = res["general"]
    assert row("general exact match (base → tuned)",
               f"{general['base']['exact_match']} → {general['tuned']['exact_match']}") in summary
    winner = res["knowledge"]["comparison"]["winner"]
    assert winner, "the fixture's tuned + RAG should win on knowledge questions"
    assert row("verdict on knowledge questions", f"{LABELS[winner]} is best (40 questions)") in summary


def test_each_stage_section_shows_what_that_stage_counted(fake_run):
    run, md, _ = fake_run
    named = sections_of(md)
    assert row("docs/logo.png", "repo:acme", "binary file") in named["Ingest"]  # the skipped files, with why
    assert row("git:acme", 3, 3) in named["Ingest"]  # redacted e-mails and names
    assert "Base model: smollm2-135m-instruct." in named["Build"]
    assert row("qa", 200) in named["Build"]
    assert row("near_dedup", 291, 280, 11) in named["Curate"]
    assert "Dropped by decontaminate (1)" in named["Curate"]
    assert "dataset/plots/lengths.png" in named["Curate"]
    train = named["Train"]
    assert "134.52M parameters (0.92M trained, lora sft), 40 steps at learning rate 0.0002" in train
    assert "812.4 tokens/s" in train and "validation loss 2.4517" in train
    assert "estimated memory 1.5 GiB" in train
    assert "report_plots/training.png" in train
    assert "270.1 MB" in named["Export"] and row("model-q8_0.gguf", 144.0, "4/5") in named["Export"]


def test_every_question_set_has_its_four_way_table_and_verdict_in_words(fake_run):
    run, md, _ = fake_run
    evaluate = sections_of(md)["Evaluate"]
    res = json.loads((run / "eval" / "results.json").read_text())
    for name, n in SETS.items():
        by_way = res[name]
        assert row(name, *LABELS.values()) in evaluate
        assert f"**{name}** ({n} questions)" in evaluate
        for key, shown in (("exact_match", "exact match"), ("f1", "F1"), ("rouge_l", "ROUGE-L")):
            assert row(shown, *[by_way[w][key] for w in ALL_WAYS]) in evaluate
        for pair in by_way["comparison"]["pairs"]:
            if pair["a"] == "base" and pair["b"] == "tuned":  # said the way round a reader expects: tuned vs base
                said = (f"tuned vs base: {-pair['difference']:+.2f} {'exact match' if name == 'general' else 'F1'} "
                        f"(95% interval {-pair['high']:+.2f} to {-pair['low']:+.2f}, {n} questions)")
                assert said in evaluate, said
    knowledge = res["knowledge"]
    assert row("judge accuracy", *[knowledge[w]["judge_accuracy"] for w in ALL_WAYS]) in evaluate
    assert "Verdict: **tuned + RAG is best** (40 questions" in evaluate


def test_retrieval_known_facts_and_kinds_are_reported(fake_run):
    run, md, _ = fake_run
    evaluate = sections_of(md)["Evaluate"]
    res = json.loads((run / "eval" / "results.json").read_text())
    assert row("knowledge", 3, 40, 0.675, 1) in evaluate  # hit@k
    known = res["knowledge"]["known_before"]
    assert (f"The base model already answered {known['known']} of 40 knowledge questions" in evaluate
            and f"on the other {known['unknown']} the tuned model gained {known['tuned_gain_on_unknown']:+.2f} F1"
            in evaluate)
    by_kind = {w: res["knowledge"][w]["by_kind"] for w in ALL_WAYS}
    assert row("instruction", by_kind["tuned"]["instruction"]["questions"],
               *[by_kind[w]["instruction"]["f1"] for w in ALL_WAYS]) in evaluate
    assert "| val | base | 3.2061 |" in evaluate and "| code | val | tuned | 2.5617 |" in evaluate


def test_example_answers_are_spread_over_each_set_and_show_every_way(fake_run):
    run, md, _ = fake_run
    evaluate = sections_of(md)["Evaluate"]
    examples = evaluate.split("### Example answers")[1].split("### ")[0]
    assert row("question", "reference", *LABELS.values(), "judge verdict") in examples
    gens = [json.loads(line) for line in (run / "eval" / "generations.jsonl").read_text().splitlines()]
    for name in SETS:
        questions = list(dict.fromkeys(g["question"] for g in gens if g["set"] == name))
        shown = [i for i, q in enumerate(questions) if f"| {q} |" in examples]
        assert len(shown) >= 3, (name, shown)
        assert max(shown) >= 3, f"{name}: only the first questions shown ({shown})"
    assert "base: correct" in examples or "base: wrong" in examples


def test_forgetting_names_questions_the_tuned_model_lost(fake_run):
    run, md, _ = fake_run
    forgetting = sections_of(md)["Evaluate"].split("### Forgetting")[1].split("### ")[0]
    res = json.loads((run / "eval" / "results.json").read_text())
    base, tuned = res["general"]["base"]["exact_match"], res["general"]["tuned"]["exact_match"]
    assert f"General exact match base → tuned: {base} → {tuned}" in forgetting
    gens = [json.loads(line) for line in (run / "eval" / "generations.jsonl").read_text().splitlines()]
    by_id = {}
    for g in gens:
        if g["set"] == "general":
            by_id.setdefault(g["id"], {})[g["model"]] = g
    lost = [q for q in by_id.values() if q["base"]["exact_match"] and not q["tuned"]["exact_match"]]
    assert lost, "the fixture should lose some general questions"
    assert f"now gets wrong {len(lost)} general questions the base model got right" in forgetting
    assert any(f"| {q['base']['question']} | {q['base']['reference']} |" in forgetting for q in lost)


def test_the_scores_during_training_show_where_to_stop(fake_run):
    _, md, _ = fake_run
    during = sections_of(md)["Evaluate"].split("### During training")[1]
    assert "Knowledge F1 was highest at step 30 (0.57), where general exact match was 0.51" in during
    assert "report_plots/during_training.png" in during


def test_a_sweep_shows_its_trials_ranked(fake_run):
    _, md, page = fake_run
    sweep = sections_of(md)["Sweep"]
    assert "3 trials (grid), ranked by val_loss" in sweep
    assert sweep.index("trial-1") < sweep.index("trial-0") < sweep.index("trial-2")
    assert "sweep/plot.png" in sweep and "<b>trial-1</b> (best)" in page


def test_every_image_the_markdown_links_is_inside_the_page(fake_run):
    run, md, page = fake_run
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 5, links  # lengths, training curves, four ways, during training, the sweep's plot
    assert all((run / link).is_file() for link in links)
    assert page.count("data:image/png;base64,") == len(links)
    assert "<img" in page and "src='report_plots" not in page  # nothing points outside the file


def test_writing_the_report_leaves_every_stage_fresh(tmp_path):
    """The report draws its plots outside the stage folders: a stage whose files changed would rerun."""
    from knowtune.report import write_report
    from knowtune.runs import RunDir, hash_outputs

    run = make_run(tmp_path / "runs", sweep=False)
    before = {d.name: hash_outputs(d) for d in run.iterdir() if d.is_dir()}
    md, _ = write_report(RunDir(run), "fake")
    first = md.read_text()
    assert {d: hash_outputs(run / d) for d in before} == before
    write_report(RunDir(run), "fake")
    assert md.read_text() == first  # the same artifacts give the same report, examples included


def test_a_run_from_scratch_has_no_base_and_says_so(tmp_path):
    from knowtune.report import write_report
    from knowtune.runs import RunDir

    run = make_run(tmp_path / "runs", ways=("tuned", "tuned_rag"), judge=False, during=False, sweep=False)
    md, page = write_report(RunDir(run), "fake")
    named = sections_of(md.read_text())
    assert "No base model: built from scratch." in named["Build"]
    assert row("knowledge", "tuned", "tuned + RAG") in named["Evaluate"]
    assert "No base model in this run (trained from scratch), so there is nothing to forget" in named["Evaluate"]
    assert "already answered" not in named["Evaluate"] and "judge" not in named["Evaluate"]
    assert "Sweep" not in named and "During training" not in named["Evaluate"]
