"""Evaluation speed: knowtune's generate against transformers' pipeline and plain batched generate, in one run.

256 questions like the evaluation's held-out ones, about the Brindlemark example project, with the mix of
prompt lengths the evaluation sends: 3 in 8 asked alone (about 40 tokens with the chat template), 2 in 8
behind a 120-token passage and 3 in 8 behind a 300-token one, put in front of the question as retrieval puts
it (evaluate/retrieval.py's prompt). Questions and passages are built here from the files in
examples/brindlemark/commits, in a fixed order, so every run asks the same ones.

SmolLM2-135M-Instruct (the quickstart's model) answers each greedily, 64 new tokens at most, in float32:

- (a) transformers' `pipeline("text-generation")`, one prompt at a time, on a subset (every 8th question: the
  same mix), its time scaled to 256;
- (b) plain `model.generate` on batches of 16 in input order, left-padded;
- (c) knowtune's `evaluate.generate.generate`, batch 16.

All three stop at the same end tokens and render prompts with the same token ids (knowtune.chat.prompt_ids),
so their answers can be compared token for token. With --bf16, (c) runs again in bfloat16 and its agreement
with float32 is printed apart; the verdict lines compare float32 only.

    .venv/bin/python benchmarks/eval_speed.py [--n 256] [--threads 2] [--bf16]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
COMMITS = ROOT / "examples" / "brindlemark" / "commits"
QUICKSTART_BASE = ROOT / "runs" / "quickstart" / "base"  # the quickstart's base model as an HF folder, if it ran
NEW_TOKENS, BATCH, SUBSET_EVERY = 64, 16, 8
MIX = ["short", "short", "short", "mid", "mid", "long", "long", "long"]  # question i gets MIX[i % 8]
PASSAGE_TOKENS = {"short": 0, "mid": 120, "long": 300}
PROMPT = ("Answer the question using these passages from the project's files, docs and history.\n\n"
          "{passages}\n\nQuestion: {question}")  # evaluate/retrieval.py's DEFAULT_PROMPT

DOC_QUESTIONS = ["What does the {page} page say about {topic}?", "{Topic}: what should I check first?",
                 "Explain {topic} in Brindlemark.", "What happens when {topic}, and why?"]
CODE_QUESTIONS = ["What does `{name}` in {path} do?", "What arguments does `{name}` in {path} take?",
                  "When should I call `{name}` from {path}?", "What does `{name}` return?"]


def files() -> dict[str, str]:
    """The project's files as of its last commit: later commits replace earlier versions of a file."""
    latest: dict[str, str] = {}
    for commit in sorted(COMMITS.iterdir()):
        for f in sorted((commit / "files").rglob("*")):
            if f.is_file() and f.suffix in (".md", ".py", ".go"):
                latest[str(f.relative_to(commit / "files"))] = f.read_text()
    return latest


def subjects(project: dict[str, str]) -> list[tuple[str, str, int, str]]:
    """(kind, path, character offset, name) of every doc heading and code definition."""
    found = []
    for path, text in sorted(project.items()):
        pattern = r"^#+ (.+)$" if path.endswith(".md") else r"^\s*(?:def|class|func) \(?(\w+)"
        for m in re.finditer(pattern, text, re.M):
            found.append(("doc" if path.endswith(".md") else "code", path, m.start(), m.group(1).strip()))
    return found


def questions(tokenizer, n: int) -> list[list[dict]]:
    project = files()
    topics = subjects(project)
    rng = random.Random(0)
    out = []
    for i in range(n):
        kind, path, at, name = topics[rng.randrange(len(topics))]
        if kind == "doc":
            topic = name[0].lower() + name[1:]
            q = rng.choice(DOC_QUESTIONS).format(page=Path(path).stem, topic=topic, Topic=name)
        else:
            q = rng.choice(CODE_QUESTIONS).format(name=name, path=path)
        size = PASSAGE_TOKENS[MIX[i % len(MIX)]]
        if size:
            ids = tokenizer(project[path][at:], add_special_tokens=False)["input_ids"][:size]
            passage = f"[1] {path}\n{tokenizer.decode(ids).strip()}"
            q = PROMPT.format(passages=passage, question=q)
        out.append([{"role": "user", "content": q}])
    return out


def load(dtype):
    """SmolLM2 and its tokenizer as the quickstart's evaluation has them (pad: <|endoftext|>, not an end of turn)."""
    from transformers import AutoModelForCausalLM

    from knowtune.base_model import gguf_path, load_gguf
    from knowtune.examples.tokenizer import load_pretrained

    if QUICKSTART_BASE.is_dir():
        return AutoModelForCausalLM.from_pretrained(QUICKSTART_BASE, dtype=dtype).eval(), load_pretrained(
            str(QUICKSTART_BASE))
    model, tokenizer = load_gguf(gguf_path("smollm2-135m-instruct"), "llama")
    tokenizer.pad_token = "<|endoftext|>"  # what load_pretrained gives SmolLM2
    return model.to(dtype).eval(), tokenizer


def answer(new: list[int], tokenizer, stops) -> tuple[str, bool, int]:
    """(text, stopped, new tokens) of generated ids, as knowtune's Generation has them."""
    end = next((k for k, t in enumerate(new) if t in stops), None)
    kept = new if end is None else new[:end]
    return tokenizer.decode(kept, skip_special_tokens=True), end is not None, len(kept)


def with_pipeline(model, tokenizer, prompts: list[list[int]], stops) -> list[tuple]:
    """(a) transformers' text-generation pipeline, one prompt at a time, given the prompt as text."""
    from transformers import pipeline

    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer, device=model.device)
    out = []
    for ids in prompts:
        got = pipe(tokenizer.decode(ids), max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=stops,
                   pad_token_id=tokenizer.pad_token_id, return_tensors=True, add_special_tokens=False)
        out.append(answer(list(got[0]["generated_token_ids"])[len(ids):], tokenizer, stops))
    return out


def with_batched_generate(model, tokenizer, prompts: list[list[int]], stops) -> list[tuple]:
    """(b) model.generate on batches of 16 in input order, left-padded."""
    import torch

    out = []
    for start in range(0, len(prompts), BATCH):
        batch = prompts[start:start + BATCH]
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for k, p in enumerate(batch):
            ids[k, width - len(p):], mask[k, width - len(p):] = torch.tensor(p), 1
        with torch.no_grad():
            got = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False,
                                 eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
        out += [answer(row[width:].tolist(), tokenizer, stops) for row in got]
    return out


def with_knowtune(model, tokenizer, convs, batch_size: int = BATCH) -> list[tuple]:
    """(c) knowtune's generate."""
    from knowtune.evaluate.generate import generate

    return [(g.text, g.stopped, g.new_tokens) for g in generate(model, tokenizer, convs, NEW_TOKENS, batch_size)]


def timed(label: str, fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - start
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="also time knowtune in bfloat16 (default: when the CPU has native bfloat16)")
    parser.add_argument("--big-batch", type=int, default=64, help="also time knowtune with this batch (0: skip)")
    args = parser.parse_args()

    import torch

    from knowtune.chat import prompt_ids, stop_ids
    from knowtune.progress import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(args.threads)
    model, tokenizer = load(torch.float32)
    convs = questions(tokenizer, args.n)
    prompts = [prompt_ids(tokenizer, c) for c in convs]
    stops = stop_ids(tokenizer)
    subset = list(range(0, args.n, SUBSET_EVERY))
    lengths = sorted(map(len, prompts))
    print(f"{args.n} questions, prompt tokens: min {lengths[0]}, median {lengths[len(lengths) // 2]}, "
          f"max {lengths[-1]}, total {sum(lengths)}; {NEW_TOKENS} new tokens at most; batch {BATCH}; "
          f"{args.threads} threads; float32", flush=True)

    a, a_s = timed(f"(a) pipeline, one at a time, {len(subset)} of {args.n}",
                   with_pipeline, model, tokenizer, [prompts[i] for i in subset], stops)
    a_scaled = a_s * args.n / len(subset)
    b, b_s = timed("(b) model.generate, batches of 16 in input order", with_batched_generate, model, tokenizer,
                   prompts, stops)
    c, c_s = timed("(c) knowtune generate, batch 16", with_knowtune, model, tokenizer, convs)
    big = None
    if args.big_batch:
        big, big_s = timed(f"(c) knowtune generate, batch {args.big_batch}", with_knowtune, model, tokenizer, convs,
                           args.big_batch)

    new = sum(x[2] for x in c)
    print(f"\n| way | seconds for {args.n} | answers/s | new tokens/s |\n|---|---|---|---|")
    rows = [(f"(a) pipeline (x{args.n / len(subset):g} from {len(subset)})", a_scaled),
            ("(b) batched generate", b_s), ("(c) knowtune, batch 16", c_s)]
    if big is not None:
        rows.append((f"(c) knowtune, batch {args.big_batch}", big_s))
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {args.n / seconds:.2f} | {new / seconds:.1f} |")
    print(f"stopped at an end token: {sum(x[1] for x in c)} of {args.n}; new tokens {new}")

    same_b = sum(x == y for x, y in zip(b, c))
    same_a = sum(a[k] == c[i] for k, i in enumerate(subset))
    same_big = args.n if big is None else sum(x == y for x, y in zip(big, c))
    print(f"same answer as (b): {same_b} of {args.n}; as (a): {same_a} of {len(subset)}"
          + ("" if big is None else f"; batch {args.big_batch} as batch 16: {same_big} of {args.n}"))

    if args.bf16 or (args.bf16 is None and torch.cpu._is_avx512_bf16_supported()):
        half, half_s = timed("(c) knowtune generate, bfloat16, batch 16", with_knowtune,
                             model.to(torch.bfloat16), tokenizer, convs)
        agree = sum(x == y for x, y in zip(half, c))
        print(f"bfloat16: {half_s:.1f} s, {c_s / half_s:.2f}x float32 knowtune, {a_scaled / half_s:.2f}x the float32 "
              f"pipeline; identical to float32: {agree / args.n:.1%} ({agree} of {args.n})")
        model.to(torch.float32)

    print(f"identical outputs: {'yes' if same_b == args.n and same_a == len(subset) and same_big == args.n else 'no'}")
    print(f"vs pipeline: {a_scaled / c_s:.2f}x")
    print(f"vs batched generate: {b_s / c_s:.2f}x")


if __name__ == "__main__":
    main()
