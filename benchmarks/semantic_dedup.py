"""Semantic dedup: knowtune against the seed's method, in the same run.

The seed (../shared/seeds/002) encodes every text with sentence-transformers at
its default settings, searches a FAISS IndexFlatIP for each record's nearest
other record and keeps a record only if that neighbour is below the threshold,
which drops both members of every duplicate pair. knowtune keeps exactly one of
each cluster, two ways: `embed` on every text then `semantic_duplicates`; and
the fast path, `screen` first (static token vectors) so that only texts with a
plausible near-duplicate are embedded. Each is timed end to end (encoding,
search, decisions), and the pairs its vectors put at or above the threshold
are scored against the pairs the seed's vectors do.

The corpus is real text from the Python standard library that ships with the
interpreter (so every machine of the project builds the same one): code
windows of its modules, and prose-like chunks from a word Markov chain over its
reference docs and docstrings; 2% of them are planted near-duplicates (a few
words changed, two sentences or lines swapped, the end cut or extended; a
fifth of them second copies, for clusters of three).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/semantic_dedup.py [--n 20000] [--options]

--options also times and scores each encoder option on the first --options-n
chunks (ONNX Runtime rows need onnxruntime and onnx, which knowtune does not
depend on; they are skipped without them).
"""

from __future__ import annotations

import argparse
import ast
import functools
import os
import random
import re
import sysconfig
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")  # torch.onnx and torch.ao deprecations would bury the table

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from knowtune.curate.screen import screen, static_vectors  # noqa: E402
from knowtune.curate.semantic import embed, semantic_duplicates  # noqa: E402

SPEED_GOAL, AGREEMENT_GOAL = 5.0, 0.95
STDLIB = Path(sysconfig.get_paths()["stdlib"])
SKIP = {"site-packages", "encodings", "pydoc_data"}  # encodings/ is dozens of near-identical codec tables


# --- corpus -------------------------------------------------------------------------------------------

def stdlib_files() -> list[Path]:
    return [p for p in sorted(STDLIB.rglob("*.py")) if not SKIP & set(p.relative_to(STDLIB).parts)]


def code_windows(files: list[Path], rng: random.Random) -> list[str]:
    """Consecutive non-blank lines of each module, 100-300 words a window, as a code chunker would cut them."""
    out = []
    for path in files:
        lines = [ln for ln in path.read_text(errors="ignore").splitlines() if ln.strip()]
        i = 0
        while i < len(lines):
            target, words, j = rng.randint(100, 300), 0, i
            while j < len(lines) and words < target:
                words += len(lines[j].split())
                j += 1
            if words >= 100:
                out.append("\n".join(lines[i:j]))
            i = j
    return out


def prose_words(files: list[Path]) -> list[str]:
    import pydoc_data.topics

    texts = list(pydoc_data.topics.topics.values())
    for path in files:
        if "test" in path.relative_to(STDLIB).parts:
            continue
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                texts.append(ast.get_docstring(node) or "")
    return " ".join(texts).split()


def markov_prose(words: list[str], n: int, rng: random.Random) -> list[str]:
    """n chunks of 100-300 words from an order-2 word chain: local grammar of real docs, no chunk repeated."""
    follow: dict[tuple[str, str], list[str]] = {}
    for a, b, c in zip(words, words[1:], words[2:]):
        follow.setdefault((a, b), []).append(c)
    starts = [k for k in follow if k[0].endswith(".") and k[1][:1].isupper()]
    out = []
    for _ in range(n):
        state, chunk = rng.choice(starts), []
        for _ in range(rng.randint(100, 300)):
            nxt = follow.get(state) or [rng.choice(starts)[1]]
            chunk.append(state[1])
            state = (state[1], rng.choice(nxt))
        out.append(" ".join(chunk))
    return out


def variant(text: str, kind: str, rng: random.Random, vocab: list[str], filler: list[str]) -> str:
    code = "\n" in text
    if kind == "words":
        words = text.split(" ")
        for _ in range(rng.randint(2, 5)):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        return " ".join(words)
    sep = "\n" if code else " "
    parts = text.split("\n") if code else re.split(r"(?<=[.!?]) ", text)
    if kind == "reorder" and len(parts) > 2:
        i = rng.randrange(len(parts) - 1)
        parts[i], parts[i + 1] = parts[i + 1], parts[i]
    elif kind == "truncate" and len(parts) > 3:
        parts = parts[: len(parts) - max(1, len(parts) // rng.choice([5, 10]))]
    else:
        parts = parts + [rng.choice(filler) for _ in range(rng.randint(1, 2))]
    return sep.join(parts)


def corpus(n: int, seed: int = 0, planted: float = 0.02) -> tuple[list[str], list[int], list[str]]:
    """Texts (shuffled), the index each planted copy was made from (-1 for originals), and its kind."""
    rng = random.Random(seed)
    files = stdlib_files()
    n_copies = int(n * planted)
    n_base = n - n_copies
    code = code_windows(files, rng)
    rng.shuffle(code)
    base = code[: int(n_base * 0.4)]
    words = prose_words(files)
    base += markov_prose(words, n_base - len(base), rng)
    vocab = sorted({w for w in words if w.isalpha()})
    filler = [s for t in base[:200] for s in re.split(r"(?<=[.!?]) |\n", t) if len(s.split()) > 3]
    texts, origin, kinds = list(base), [-1] * len(base), ["original"] * len(base)
    for k in range(n_copies):
        # a fifth are second copies of an original that already has one: clusters of three
        src = origin[-1] if k % 5 == 4 else rng.randrange(n_base)
        kind = rng.choice(["words", "words", "reorder", "truncate", "extend"])
        texts.append(variant(texts[src], kind, rng, vocab, filler))
        origin.append(src)
        kinds.append(kind)
    perm = list(range(len(texts)))
    rng.shuffle(perm)
    where = {old: new for new, old in enumerate(perm)}
    return ([texts[i] for i in perm], [where[origin[i]] if origin[i] >= 0 else -1 for i in perm],
            [kinds[i] for i in perm])


# --- the two methods ----------------------------------------------------------------------------------

def load_seed_model(max_seq_length: int | None = None):
    from sentence_transformers import SentenceTransformer

    from knowtune.curate.embed import model_path

    model = SentenceTransformer(model_path("all-MiniLM-L6-v2"), device="cpu")
    if max_seq_length:
        model.max_seq_length = max_seq_length
    model.encode(["warm up"] * 4)
    return model


def seed_encode(model, texts: list[str], **kwargs) -> np.ndarray:
    emb = model.encode(texts, show_progress_bar=False, **kwargs)
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)  # the seed normalises with numpy


def seed_dedup(emb: np.ndarray, threshold: float) -> list[int]:
    """The seed's rule: a record stays if its nearest other record is below the threshold. Returns those dropped."""
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    scores, _ = index.search(emb, 2)
    return [i for i in range(len(emb)) if scores[i, 1] >= threshold]


def knowtune_dedup(emb: np.ndarray, texts: list[str], threshold: float,
                   rows: list[int] | None = None) -> list[tuple[str, str, float]]:
    """semantic_duplicates over `rows` of the texts (all of them by default); ids are the row numbers."""
    rows = list(range(len(texts))) if rows is None else rows
    return semantic_duplicates(emb, [str(i) for i in rows], [len(texts[i].split()) for i in rows], threshold)


def knowtune_screened(texts: list[str], threshold: float, screen_threshold: float = 0.8):
    """The fast path: static screen, then embed and semantic_duplicates on the texts it lets through."""
    rows = screen(texts, threshold=screen_threshold)
    emb = embed([texts[i] for i in rows])
    return rows, emb, knowtune_dedup(emb, texts, threshold, rows)


# --- scoring ------------------------------------------------------------------------------------------

MAX_PAIRS = 20_000_000  # a vector space where everything is "similar" would otherwise fill the memory


def pairs(emb: np.ndarray, threshold: float, rows: list[int] | None = None, n: int | None = None):
    """Every pair at or above the threshold (not only nearest neighbours), as sorted keys i * n + j with i < j,
    i and j numbered by `rows` (the records `emb` holds, all by default) out of `n`; None past MAX_PAIRS."""
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    lims, scores, found = index.range_search(emb, threshold - 1e-3)
    if lims[-1] > 2 * MAX_PAIRS:
        return None
    first = np.repeat(np.arange(len(emb)), np.diff(lims).astype(np.int64))
    keep = (found > first) & (scores >= threshold)
    rows = np.arange(len(emb)) if rows is None else np.asarray(rows, dtype=np.int64)
    a, b = rows[first[keep]], rows[found[keep]]
    return np.unique(np.minimum(a, b) * (n or len(emb)) + np.maximum(a, b))


def precision_recall(reference: np.ndarray, found: np.ndarray | None) -> tuple[float, float]:
    if found is None:
        return 0.0, 1.0
    hit = len(np.intersect1d(reference, found, assume_unique=True))
    return hit / max(len(found), 1), hit / max(len(reference), 1)


def key_pairs(keys: np.ndarray, n: int) -> list[tuple[int, int]]:
    return list(zip((keys // n).tolist(), (keys % n).tolist()))


def components(n: int, links) -> list[int]:
    root = list(range(n))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for a, b in links:
        root[find(a)] = find(b)
    return [find(i) for i in range(n)]


def planted_caught(origin: list[int], links) -> int:
    """Planted copies that end up in one cluster with the record they were made from."""
    group = components(len(origin), links)
    return sum(1 for i, o in enumerate(origin) if o >= 0 and group[i] == group[o])


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


# --- options tried for the encoder (--options) --------------------------------------------------------
# Each option's setup loads what it needs (not timed) and returns encode(texts) -> (rows it embedded, or None
# for all, and their vectors); timing covers encode and semantic_duplicates.

class threads:
    """torch's intra-op threads for the duration of a block."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        import torch

        self.before = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.before)


def st_option(max_seq_length: int, batch_size: int = 32, n_threads: int | None = None, int8: bool = False):
    def setup():
        import torch

        model = load_seed_model(max_seq_length)
        if int8:
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

        def encode(texts):
            with threads(n_threads):
                return None, seed_encode(model, texts, batch_size=batch_size)
        return encode
    return setup


def knowtune_option(window: int | None = None):
    def setup():
        from knowtune.curate.embed import encoder

        st, _ = encoder("all-MiniLM-L6-v2")
        default = st.max_seq_length
        st.max_seq_length = window or default
        embed(["warm up"])

        def encode(texts):
            return None, embed(texts)
        encode.close = lambda: setattr(st, "max_seq_length", default)
        return encode
    return setup


def _pool_start() -> None:
    import torch

    torch.set_num_threads(1)
    embed(["warm up"])


def pool_option(workers: int = 2, batch: int = 256):
    """embed mapped over batches on a process pool, one torch thread each, as the curate stage can run it."""
    def setup():
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_pool_start)
        pool.map(len, [[0]] * 4 * workers, chunksize=1)  # the workers have started and loaded the model

        def encode(texts):
            parts = pool.map(embed, [texts[i:i + batch] for i in range(0, len(texts), batch)], chunksize=1)
            return None, np.concatenate(parts)
        encode.close = lambda: (pool.terminate(), pool.join())
        return encode
    return setup


def ort_option(int8: bool, batch_size: int = 32):
    """ONNX Runtime on the model as torch.onnx exports it (optimum would replace this venv's transformers)."""
    def setup():
        import tempfile

        import onnxruntime as ort
        import torch

        model = load_seed_model()
        bert, tokenizer, window = model[0].auto_model, model.tokenizer, model.max_seq_length

        class Pooled(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask):
                hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

        path = Path(tempfile.mkdtemp()) / "model.onnx"
        ids = torch.ones(2, 8, dtype=torch.long)
        torch.onnx.export(Pooled().eval(), (ids, ids), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["emb"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}})
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(path), str(path.with_suffix(".int8")), weight_type=QuantType.QInt8, per_channel=True)
            path = path.with_suffix(".int8")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def encode(texts):
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # length-sorted, as sentence-transformers
            out = np.zeros((len(texts), bert.config.hidden_size), np.float32)
            for s in range(0, len(order), batch_size):
                rows = order[s:s + batch_size]
                b = tokenizer([texts[i] for i in rows], truncation=True, max_length=window, padding=True,
                              return_tensors="np")
                out[rows] = session.run(None, {"input_ids": b["input_ids"].astype(np.int64),
                                               "attention_mask": b["attention_mask"].astype(np.int64)})[0]
            return None, out / np.linalg.norm(out, axis=1, keepdims=True)
        return encode
    return setup


def static_option():
    def setup():
        static_vectors(["warm up", "the token table"])  # distils the token vectors once
        return lambda texts: (None, static_vectors(texts))
    return setup


def screened_option(screen_threshold: float):
    def setup():
        static_vectors(["warm up", "the token table"])
        embed(["warm up"])

        def encode(texts):
            rows = screen(texts, threshold=screen_threshold)
            return rows, embed([texts[i] for i in rows])
        return encode
    return setup


OPTIONS = [
    ("seed defaults: 256 tokens, fp32, batch 32, 2 threads", st_option(256)),
    ("truncate 128, fp32", st_option(128)),
    ("truncate 64, fp32", st_option(64)),
    ("256 tokens, fp32, batch 8", st_option(256, 8)),
    ("256 tokens, fp32, batch 128", st_option(256, 128)),
    ("256 tokens, fp32, 1 torch thread", st_option(256, n_threads=1)),
    ("256 tokens, torch int8 dynamic (Linear)", st_option(256, int8=True)),
    ("256 tokens, ONNX Runtime fp32", ort_option(False)),
    ("256 tokens, ONNX Runtime int8 dynamic, per channel", ort_option(True)),
    ("knowtune embed: 256, bf16 autocast, equal-length batches", knowtune_option()),
    ("knowtune embed, 2 processes x 1 thread", pool_option()),
    ("knowtune embed cut at 128 tokens", knowtune_option(128)),
    ("knowtune embed cut at 64 tokens", knowtune_option(64)),
    ("static token vectors (SIF), no model run per text", static_option()),
    ("knowtune screen 0.8 + embed (the default path)", screened_option(0.8)),
    ("knowtune screen 0.9 + embed", screened_option(0.9)),
]


# --- the run ------------------------------------------------------------------------------------------

def load() -> str:
    return open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"


def run_option(label: str, setup, texts: list[str], reference: np.ndarray, threshold: float, base: float | None):
    try:
        encode = setup()
    except ImportError as e:
        print(f"  {label:58s} skipped: {e}")
        return None
    (rows, emb), seconds = timed(encode, texts)
    _, dedup_seconds = timed(knowtune_dedup, emb, texts, threshold, rows)
    getattr(encode, "close", lambda: None)()
    rate = len(texts) / (seconds + dedup_seconds)
    found = pairs(emb, threshold, rows, len(texts))
    p, r = precision_recall(reference, found)
    count = f"{len(found):7d}" if found is not None else f">{MAX_PAIRS // 1_000_000}M".rjust(7)
    print(f"  {label:58s} {rate:8.1f}/s {rate / (base or rate):5.1f}x  pairs {count}  P {p:.3f}  R {r:.3f}",
          flush=True)
    if label.startswith("static"):
        best = max((precision_recall(reference, pairs(emb, t)) + (t,) for t in np.arange(0.955, 1.0, 0.005)),
                   key=lambda x: 2 * x[0] * x[1] / max(x[0] + x[1], 1e-9))
        print(f"  {'  ... at the threshold that fits this corpus best:':58s} {best[2]:.3f}{'':25s}"
              f"P {best[0]:.3f}  R {best[1]:.3f}")
    return rate


def report(name: str, rate: float, seed_rate: float, out, reference, found, origin) -> None:
    kept = {k for _, k, _ in out}
    assert not kept & {d for d, _, _ in out}, "a record was both kept and dropped"
    p, r = precision_recall(reference, found)
    caught = planted_caught(origin, [(int(d), int(k)) for d, k, _ in out])
    ratio = rate / seed_rate
    print(f"{name}: {rate:7.1f} chunks/s, {ratio:4.1f}x the seed ({'meets' if ratio >= SPEED_GOAL else 'BELOW'} "
          f"goal {SPEED_GOAL:.0f}x); drops {len(out)} records, keeping exactly one of each of {len(kept)} clusters; "
          f"planted copies caught {caught}")
    print(f"{'':{len(name)}}  pairs {len(found)}, precision {p:.3f}, recall {r:.3f} against the seed's pairs "
          f"({'meets' if min(p, r) >= AGREEMENT_GOAL else 'BELOW'} goal {AGREEMENT_GOAL})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="chunks in the corpus")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--screen", type=float, default=0.8, help="static cosine a text needs to be embedded")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="extra timings of each method, for the spread")
    parser.add_argument("--repeat-n", type=int, default=2000, help="chunks in each extra timing")
    parser.add_argument("--options", action="store_true", help="also time and score each encoder option")
    parser.add_argument("--options-n", type=int, default=5000, help="chunks each option is measured on")
    args = parser.parse_args()
    t = args.threshold

    from knowtune.curate.embed import encoder

    texts, origin, kinds = corpus(args.n, args.seed)
    n = len(texts)
    planted = {k: kinds.count(k) for k in sorted(set(kinds)) if k != "original"}
    code = sum("\n" in x for x in texts)
    st, bf16 = encoder("all-MiniLM-L6-v2")
    print(f"corpus: {n} chunks ({code} code, {n - code} prose), {np.mean([len(x.split()) for x in texts]):.0f} "
          f"words on average; planted copies {planted}")
    print(f"machine: {os.cpu_count()} cores, load average {load()} at the start; knowtune embed: "
          f"{st.max_seq_length} tokens, {'bfloat16 autocast' if bf16 else 'float32'}")

    seed_model = load_seed_model()
    emb_seed, seed_s = timed(seed_encode, seed_model, texts)
    seed_dropped, search_s = timed(seed_dedup, emb_seed, t)
    seed_rate = n / (seed_s + search_s)
    embed(["warm up"])
    emb_all, embed_s = timed(embed, texts)
    out_all, dedup_s = timed(knowtune_dedup, emb_all, texts, t)
    (rows, emb_sub, out_sub), screened_s = timed(knowtune_screened, texts, t, args.screen)

    reference = pairs(emb_seed, t)
    seed_links = key_pairs(reference, n)
    dropped = set(seed_dropped)
    seed_groups = {g for i, g in enumerate(components(n, seed_links)) if i in dropped}
    print(f"\nseed method: {seed_rate:7.1f} chunks/s (encode {seed_s:.1f} s, search {search_s:.2f} s); drops "
          f"{len(seed_dropped)} records: every member of {len(seed_groups)} clusters, keeping none of them; "
          f"planted copies caught {planted_caught(origin, seed_links)} of {sum(o >= 0 for o in origin)}; "
          f"{len(reference)} pairs at cosine >= {t}")
    report("knowtune, embed every text", n / (embed_s + dedup_s), seed_rate, out_all, reference,
           pairs(emb_all, t), origin)
    print(f"{'':26s}  (embed {embed_s:.1f} s, semantic_duplicates {dedup_s:.2f} s)")
    report(f"knowtune, screen {args.screen} + embed", n / screened_s, seed_rate, out_sub, reference,
           pairs(emb_sub, t, rows, n), origin)
    print(f"{'':26s}  ({len(rows)} of {n} texts passed the screen; {screened_s:.1f} s in all, including "
          f"distilling the token vectors once)")

    if args.repeats:
        sub = texts[: args.repeat_n]
        print(f"\nspread: {args.repeats} more timings of each on {len(sub)} chunks, one after the other "
              f"(token vectors already distilled)")
        runs = []
        for k in range(args.repeats):
            a = len(sub) / timed(lambda: seed_dedup(seed_encode(seed_model, sub), t))[1]
            b = len(sub) / timed(lambda: knowtune_dedup(embed(sub), sub, t))[1]
            c = len(sub) / timed(knowtune_screened, sub, t, args.screen)[1]
            runs.append((b / a, c / a))
            print(f"  run {k + 1}: seed {a:6.1f}/s  embed every text {b:6.1f}/s ({b / a:4.1f}x)  "
                  f"screened {c:6.1f}/s ({c / a:4.1f}x)  load {load()}")
        for name, col in (("embed every text", 0), ("screened", 1)):
            ratios = [x[col] for x in runs]
            print(f"  {name}: ratio min {min(ratios):.1f}x, median {float(np.median(ratios)):.1f}x, "
                  f"max {max(ratios):.1f}x")

    if args.options:
        sub = texts[: args.options_n]
        ref = pairs(emb_seed[: len(sub)], t)
        print(f"\noptions on the first {len(sub)} chunks ({len(ref)} seed pairs); P and R against the seed's pairs:")
        base = None
        for label, setup in OPTIONS:
            rate = run_option(label, setup, sub, ref, t, base)
            base = base or rate
    print(f"\nload average at the end: {load()}")


if __name__ == "__main__":
    main()
