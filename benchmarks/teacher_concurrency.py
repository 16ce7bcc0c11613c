"""Teacher throughput against an OpenAI-compatible server that takes a fixed time per reply.

With C requests in flight and D seconds a reply, the ideal is C / D requests a
second; the ratio to it shows what the client, cache writes (one fsync per
reply) and scheduling cost. The sequential baseline (concurrency 1) is
measured in the same run. The server runs in its own process, as a real one
would, so its threads do not compete with the client for the GIL.

    .venv/bin/python benchmarks/teacher_concurrency.py [--delay 0.2] [--chunks-per-slot 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from knowtune.examples.teacher import generate
from knowtune.config import TeacherConfig
from knowtune.records import Chunk, Document

FAKE = Path(__file__).resolve().parents[1] / "tests" / "fake_openai.py"
GOAL = 0.80


def corpus(n: int) -> tuple[list[Chunk], dict[str, Document]]:
    doc = Document(id="d", source="bench", path="lanterna/inventory.py", kind="code", text="")
    chunks = [Chunk(id=f"c{i}", document_id="d", n_tokens=40, span=(0, 0),
                    text=f"Chunk {i} counts the lamps in store {i}. Taking more than is left is refused for store {i}.")
              for i in range(n)]
    return chunks, {"d": doc}


def measure(url: str, concurrency: int, n: int) -> float:
    chunks, docs = corpus(n)
    teacher = TeacherConfig(base_url=url, model="fake", concurrency=concurrency, timeout=30)
    with tempfile.TemporaryDirectory() as cache:
        result = generate(chunks, docs, teacher, None, Path(cache))
    assert result.usage["requests"] == n and len(result.examples) == 2 * n, result.usage
    return n / result.usage["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the server takes per reply")
    parser.add_argument("--chunks-per-slot", type=int, default=10, help="requests per concurrency slot")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, str(FAKE), "--delay", str(args.delay)], stdout=subprocess.PIPE,
                              text=True)
    try:
        url = server.stdout.readline().strip()
        measure(url, 4, 8)  # warm-up: imports, first connections
        print(f"server delay {args.delay:g} s per reply; {args.chunks_per_slot} requests per slot")
        base = measure(url, 1, args.chunks_per_slot)
        print(f"sequential baseline (concurrency 1): {base:6.2f} req/s  (ideal {1 / args.delay:6.2f}, "
              f"ratio {base * args.delay:.2f})")
        for c in args.concurrency:
            rate = measure(url, c, c * args.chunks_per_slot)
            ideal = c / args.delay
            ratio = rate / ideal
            print(f"concurrency {c:3d}: {rate:7.2f} req/s  ideal {ideal:7.2f}  ratio {ratio:.2f} "
                  f"({'meets' if ratio >= GOAL else 'BELOW'} goal {GOAL:.2f})  {rate / base:5.1f}x sequential")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
