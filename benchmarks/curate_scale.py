"""How the curate stage's time grows with the number of chunks: every default step, 10k and 100k.

The chunks come from benchmarks/semantic_dedup.py's corpus (code and prose from the Python standard
library, 2% planted near-copies), one document each, through `run_curate` with default settings (the
leak check drops: the standard library has a few test keys) and the
quickstart's tokenizer (benchmarks/data/train_speed/tokenizer). Prints each step's seconds from the
stage's log and the total, and the ratio of the two sizes' per-chunk costs (1.0 is linear).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/curate_scale.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from semantic_dedup import corpus  # noqa: E402

from knowtune.config import CurateConfig, ExecutorConfig  # noqa: E402
from knowtune.curate.stage import run_curate  # noqa: E402
from knowtune.records import Example, write_jsonl  # noqa: E402
from knowtune.settings import CurateSettings  # noqa: E402

TOKENIZER = Path(__file__).parent / "data" / "train_speed" / "tokenizer"


def run(n: int) -> float:
    texts, _, _ = corpus(n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        examples = [Example(id=f"c{i}", kind="raw", document_id=f"d{i}", text=t,
                            metadata={"doc_kind": "code" if "\n" in t else "doc"}) for i, t in enumerate(texts)]
        write_jsonl(tmp / "examples" / "examples.jsonl", examples)
        start = time.perf_counter()
        settings = CurateSettings(curate=CurateConfig(max_tokens=4096, leak_check="drop"), allow=[],
                                  executor=ExecutorConfig())
        counts = run_curate(settings, tmp / "examples", TOKENIZER, tmp / "out")
        seconds = time.perf_counter() - start
        steps = [ln for ln in (tmp / "out" / "log.txt").read_text().splitlines() if ln.endswith(" s")]
    print(f"{n} chunks: {seconds:.0f} s in all ({n / seconds:.0f} chunks/s), {counts['examples']} kept; "
          + ", ".join(steps), flush=True)
    return seconds / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    args = parser.parse_args()
    per_chunk = [run(n) for n in args.sizes]
    if len(per_chunk) > 1:
        print(f"cost per chunk at {args.sizes[-1]} against {args.sizes[0]}: {per_chunk[-1] / per_chunk[0]:.2f}x "
              "(1.00 is linear)")


if __name__ == "__main__":
    main()
