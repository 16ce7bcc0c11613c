from knowtune.curate.split import assign
from knowtune.curate.decontaminate import decontaminate
from knowtune.curate.steps import exact_dedup
from knowtune.records import Example


def corpus(n_docs=40, questions_per_doc=3):
    out = []
    for d in range(n_docs):
        out.append(Example(id=f"r{d}", kind="raw", document_id=f"d{d}", text=f"document {d} text"))
        for q in range(questions_per_doc):
            out.append(Example(
                id=f"q{d}.{q}", kind="instruction", document_id=f"d{d}",
                messages=[{"role": "user", "content": f"What does document {d} say about topic number {q} of the store?"},
                          {"role": "assistant", "content": f"answer {q} of {d}"}],
            ))
    return out


def test_no_document_is_in_two_of_train_val_test():
    examples = corpus()
    assign(examples, 0.1, 0.1, 0.2, seed=0)
    placed = {}
    for e in examples:
        side = "train" if e.split == "knowledge" else e.split
        placed.setdefault(e.document_id, set()).add(side)
    assert all(len(s) == 1 for s in placed.values())
    sides = {next(iter(s)) for s in placed.values()}
    assert sides == {"train", "val", "test"}


def test_knowledge_questions_come_from_trained_documents_and_leave_their_raw_text_in_training():
    examples = corpus()
    assign(examples, 0.1, 0.1, 0.3, seed=0)
    knowledge = [e for e in examples if e.split == "knowledge"]
    trained_docs = {e.document_id for e in examples if e.split == "train"}
    assert knowledge and all(e.kind == "instruction" for e in knowledge)
    assert {e.document_id for e in knowledge} <= trained_docs
    for e in knowledge:
        assert any(r.kind == "raw" and r.document_id == e.document_id and r.split == "train" for r in examples)


def test_split_is_stable_under_reruns_and_corpus_growth():
    a = corpus(40)
    assign(a, 0.1, 0.1, 0.2, seed=0)
    b = corpus(60)
    assign(b, 0.1, 0.1, 0.2, seed=0)
    where_b = {e.id: e.split for e in b}
    assert all(where_b[e.id] == e.split for e in a)


def test_a_tiny_corpus_still_gets_val_and_test_documents():
    examples = corpus(n_docs=5)
    assign(examples, 0.1, 0.1, 0.2, seed=0)
    assert {"val", "test", "train"} <= {e.split for e in examples}


def test_training_examples_repeating_a_held_out_question_are_dropped_with_its_id():
    examples = corpus(20)
    assign(examples, 0.1, 0.1, 0.3, seed=1)
    held = next(e for e in examples if e.split == "knowledge")
    twin = Example(id="twin", kind="instruction", document_id="d-other", split="train",
                   messages=[{"role": "user", "content": "  " + held.messages[0]["content"].upper()},
                             {"role": "assistant", "content": "a different answer"}])
    raw_copy = Example(id="rawcopy", kind="raw", document_id="d-other", split="train",
                       text=held.messages[0]["content"])
    result = decontaminate(examples + [twin, raw_copy], n=13)
    dropped = {d.record["id"]: d for d in result.dropped}
    assert set(dropped) == {"twin"}
    assert dropped["twin"].duplicate_of == held.id and dropped["twin"].step == "decontaminate"


def test_exact_dedup_is_within_a_kind_and_keeps_the_first():
    a = Example(id="a", kind="raw", document_id="d", text="Same  text\n")
    b = Example(id="b", kind="raw", document_id="e", text="same text")
    c = Example(id="c", kind="instruction", document_id="d",
                messages=[{"role": "user", "content": "same text"}, {"role": "assistant", "content": "x"}])
    result = exact_dedup([a, b, c])
    assert [e.id for e in result.kept] == ["a", "c"]
    assert result.dropped[0].record["id"] == "b" and result.dropped[0].duplicate_of == "a"


def chat(i, doc, q, a, split):
    return Example(id=i, kind="qa", document_id=doc, split=split,
                   messages=[{"role": "user", "content": q}, {"role": "assistant", "content": a}])


def test_a_short_held_out_answer_quoted_in_a_training_answer_is_caught():
    held = chat("h", "d1", "Which port does the tide gauge use?", "Port 7421 over plain UDP.", "knowledge")
    copied = chat("t", "d2", "How is the gauge reached?",
                  "The gauge is reached on port 7421 over plain UDP, from the harbour office only.", "train")
    inside = chat("u", "d3", "And the relay?", "plain UDP", "train")  # too short to be about anything
    result = decontaminate([held, copied, inside], 13)
    assert [d.record["id"] for d in result.dropped] == ["t"]
    assert result.dropped[0].duplicate_of == "h" and "5-word" in result.dropped[0].reason
    assert result.note == "short text: 1"


def test_a_training_answer_that_is_a_piece_of_a_held_out_one_is_caught():
    held = chat("h", "d1", "What happens on a storm night?",
                "On a storm night the lamp burns half as much oil again, and the keeper logs it.", "test")
    piece = chat("t", "d2", "How much oil does the lamp burn in a storm?", "Half as much oil again.", "train")
    result = decontaminate([held, piece], 13)
    assert [d.record["id"] for d in result.dropped] == ["t"] and "inside" in result.dropped[0].reason


def test_generic_short_answers_do_not_empty_the_training_set():
    held = chat("h", "d1", "What does `close` in store.py return?", "Returns None.", "knowledge")
    others = [chat(f"t{i}", f"d{i + 2}", f"What does `f{i}` in m.py return?", "It returns None.", "train")
              for i in range(5)]
    assert decontaminate([held, *others], 13).dropped == []


def worded(fact: str, doc: str, n: int = 3):
    """A fact in n wordings and a spare one, as phrasings.py makes them."""
    out = []
    for i in range(n + 1):
        e = Example(id=f"{fact}.{i}", kind="qa", document_id=doc,
                    messages=[{"role": "user", "content": f"Question {i} about {fact}?"},
                              {"role": "assistant", "content": f"The answer about {fact}."}],
                    metadata={"fact": fact, "phrasing": i, **({"spare": True} if i == n else {})})
        out.append(e)
    return out


def test_facts_are_held_out_whole_and_spare_wordings_form_the_paraphrase_set():
    examples = []
    for d in range(30):
        examples.append(Example(id=f"r{d}", kind="raw", document_id=f"d{d}", text=f"document {d}"))
        for f in range(4):
            examples += worded(f"f{d}.{f}", f"d{d}")
    assign(examples, 0.1, 0.1, 0.3, seed=0, paraphrase_share=0.5)
    by_fact = {}
    for e in examples:
        if e.metadata.get("fact"):
            by_fact.setdefault(e.metadata["fact"], []).append(e)
    held = [f for f, es in by_fact.items() if any(e.split == "knowledge" for e in es)]
    assert held and all(all(e.split == "knowledge" for e in by_fact[f]) for f in held)  # every wording, together
    for f in held:  # the raw text stating it is trained
        assert next(e for e in examples if e.id == "r" + by_fact[f][0].document_id[1:]).split == "train"
    paraphrased = [f for f, es in by_fact.items() if any(e.split == "paraphrase" for e in es)]
    assert paraphrased and not set(paraphrased) & set(held)
    for f in paraphrased:  # only the spare is held out; the other wordings of the fact train
        assert [e.split for e in by_fact[f]] == ["train", "train", "train", "paraphrase"]


def test_decontamination_removes_a_wording_of_a_held_out_fact_that_stayed_in_training():
    examples = worded("f1", "d1")
    for e in examples[:2]:
        e.split = "knowledge"
    for e in examples[2:]:  # as if a change's question had followed its file elsewhere
        e.split = "train"
    result = decontaminate(examples, 13)
    assert {d.record["id"] for d in result.dropped} == {"f1.2", "f1.3"}
    assert all(d.reason.startswith("states the fact of") for d in result.dropped)


def test_a_paraphrase_shares_its_answer_with_trained_wordings_and_removes_nothing():
    examples = worded("f1", "d1")
    for e in examples:
        e.split = "train"
    examples[-1].split = "paraphrase"
    assert decontaminate(examples, 13).dropped == []
