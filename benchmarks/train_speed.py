"""Training speed: knowtune's train stage against TRL's SFTTrainer, on the same examples, in one run.

The fixed dataset in benchmarks/data/train_speed/ (the quickstart's curated
train split: raw chunks, instructions and QA pairs, with its tokenizer) trains
the quickstart's model from the same initial weights three ways, each over the
same examples, so the same real tokens:

- knowtune: the train stage (packing with block-diagonal masks, its loss);
- TRL default: SFTTrainer with default settings, padding to the longest in the batch;
- TRL padding-free: SFTTrainer with packing and padding_free=True, its fastest
  setting here, but one where packed examples attend to each other on a CPU
  (no flash attention), so a speed reference rather than a correct setting.

Each runs in its own process, so peak memory (max RSS) is its own. Printed:
real tokens per second (padding not counted), peak memory, model FLOPs
utilisation against a float32 matrix-multiply peak measured in the same run,
and the loss of each trained model on the same held-out examples.

    .venv/bin/python benchmarks/train_speed.py [--examples 400] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).parent / "data" / "train_speed"
SHAPE = {"hidden_size": 256, "layers": 4, "heads": 4, "intermediate_size": 704, "tie_embeddings": False}
MAX_LENGTH, BATCH, LR, SEED = 512, 8, 1e-3, 0
METHODS = ["knowtune", "trl-default", "trl-padding-free"]


def examples(n: int):
    from knowtune.records import Example, read_jsonl

    rows = list(read_jsonl(DATA / "examples.jsonl", Example))
    return rows[:n], rows[n:n + 64]  # trained on, held out for the final loss


def rows_of(tokenizer, chosen):
    from knowtune.chat import encode_example

    rows = [encode_example(tokenizer, e) for e in chosen]
    return [r for r in rows if len(r["input_ids"]) <= MAX_LENGTH]


def matmul_peak(threads: int) -> float:
    """GFLOP/s of float32 matrix products on this CPU: the ceiling for utilisation."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * 1024 ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def model_flops(model, rows) -> float:
    """Training FLOPs: 6 per weight per token (embedding lookups excluded), plus causal attention."""
    cfg = model.config
    weights = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    tokens = sum(len(r["input_ids"]) for r in rows)
    attention = sum(6 * cfg.num_hidden_layers * cfg.hidden_size * len(r["input_ids"]) ** 2 for r in rows)
    return 6 * weights * tokens + attention


def held_out_loss(model, tokenizer, held) -> float:
    import torch

    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for r in rows_of(tokenizer, held):
            labels = torch.tensor([r["labels"]])
            n = int((labels[0, 1:] != -100).sum())
            if n:
                total += float(model(input_ids=torch.tensor([r["input_ids"]]), labels=labels).loss) * n
                count += n
    return total / count


def run_one(method: str, n: int, threads: int, optimizer: str, rows: int | None) -> dict:
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast

    from knowtune.config import TrainConfig
    from knowtune.curate.writer import write_dataset
    from knowtune.train.model import build_scratch

    torch.set_num_threads(threads)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(DATA / "tokenizer")
    chosen, held = examples(n)
    encoded = rows_of(tokenizer, chosen)
    real_tokens = sum(len(r["input_ids"]) for r in encoded)
    # Packed rows hold several examples: knowtune takes as many rows a step as hold the tokens of TRL's
    # batch of 8 examples, so both make about the same number of optimizer steps of the same size.
    rows_per_step = rows or max(1, round(BATCH * real_tokens / len(encoded) / MAX_LENGTH))
    cfg = TrainConfig(model=SHAPE, precision="fp32", max_length=MAX_LENGTH, batch_size=rows_per_step, epochs=1,
                      learning_rate=LR,
                      warmup_ratio=0.05, logging_steps=1000, eval_steps=100000, save_steps=100000, seed=SEED,
                      threads=threads, optimizer=optimizer)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if method == "knowtune":
            from knowtune.train.run import prepare

            for e in chosen:
                e.split = "train"
            write_dataset(chosen, tmp / "dataset")
            tokenizer.save_pretrained(tmp / "tokenizer")
            p = prepare(cfg, tmp / "dataset", tmp / "tokenizer", tmp / "train")
            trainer = p.trainer
        else:
            from trl import SFTConfig, SFTTrainer

            model = build_scratch(cfg, tokenizer)
            args = SFTConfig(
                output_dir=str(tmp / "out"), per_device_train_batch_size=BATCH, learning_rate=LR, num_train_epochs=1,
                lr_scheduler_type="cosine", warmup_steps=0.05, max_length=MAX_LENGTH, seed=SEED, data_seed=SEED,
                save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, logging_steps=1000,
                packing=method == "trl-padding-free", padding_free=method == "trl-padding-free",
            )
            trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(encoded),
                                 processing_class=tokenizer)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        model = trainer.model
        flops = model_flops(model, encoded)
        loss = held_out_loss(model, tokenizer, held)
    return {"method": method, "tokens": real_tokens, "seconds": seconds, "tokens_per_second": real_tokens / seconds,
            "gflops": flops / seconds / 1e9, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "held_out_loss": loss, "steps": trainer.state.global_step}


def main() -> None:
    from knowtune.config import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=400, help="training examples (of 600)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--optimizer", default=TrainConfig().optimizer, help="knowtune's train.optimizer")
    parser.add_argument("--rows", type=int, help="knowtune's packed rows a step (default: as many tokens as TRL's "
                        "batch of 8 examples)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds; each method's fastest run is compared")
    parser.add_argument("--one", choices=METHODS, help=argparse.SUPPRESS)  # a child process: one method
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.examples, args.threads, args.optimizer, args.rows)))
        return
    # Each round runs the three one after another; with several rounds each method keeps its fastest run,
    # as timeit does: slower runs are the same work slowed by whatever else the machine was doing.
    best: dict[str, dict] = {}
    peak = 0.0
    for round_ in range(args.repeats):
        peak = max(peak, matmul_peak(args.threads))
        print(f"round {round_ + 1}/{args.repeats}: float32 matmul peak on {args.threads} threads: {peak:.0f} GFLOP/s")
        for method in METHODS:
            r = run_child(method, args)
            print(line(r, peak), flush=True)
            if method not in best or r["tokens_per_second"] > best[method]["tokens_per_second"]:
                best[method] = r
    if args.repeats > 1:
        print(f"fastest of {args.repeats} runs each:")
        for method in METHODS:
            print(line(best[method], peak))
    k = best["knowtune"]["tokens_per_second"]
    print(f"vs TRL default: {k / best['trl-default']['tokens_per_second']:.2f}x")
    print(f"vs TRL padding-free: {k / best['trl-padding-free']['tokens_per_second']:.2f}x")


def run_child(method: str, args) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--one", method, "--examples", str(args.examples),
                           "--threads", str(args.threads), "--optimizer", args.optimizer]
                          + (["--rows", str(args.rows)] if args.rows else []),
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def line(r: dict, peak: float) -> str:
    return (f"{r['method']:17s} {r['tokens_per_second']:8.0f} tok/s  {r['tokens']} tokens in {r['seconds']:.1f} s "
            f"({r['steps']} steps)  peak {r['peak_mib']:.0f} MiB  MFU {r['gflops'] / peak:5.1%}  "
            f"held-out loss {r['held_out_loss']:.3f}")

if __name__ == "__main__":
    main()
