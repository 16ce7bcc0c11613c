"""Retrieval finds the passage a question is about, even asked in other words, and fits the context."""

from knowtune.evaluate.retrieval import Retriever, with_passages
from knowtune.records import Chunk

PASSAGES = {
    "port": "The ledger service accepts readings over HTTP on port 7460; before v0.2.0 it used 7341, which the "
            "shed's scale bridge already held.",
    "mist": "A misting run is six pulses of 900 milliseconds, forty seconds apart, and no bay mists between "
            "22:00 and 05:30.",
    "alarm": "HEAT (BRM-301) fires when a bay reads above 37.0 degrees for three readings in a row.",
    "buffer": "ventd keeps 960 samples in its ring buffer: four hours at one sample every fifteen seconds.",
}


def chunks():
    return [Chunk(id=k, document_id=f"d{k}", text=t, n_tokens=40, span=(0, len(t)), metadata={"path": f"{k}.md"})
            for k, t in PASSAGES.items()]


def test_a_reworded_question_retrieves_its_passage():
    retriever = Retriever(chunks())
    questions = ["Which network number does the service take its measurements on?",  # port, no shared word
                 "At night, may the sprinklers spray water?",  # misting
                 "How long can the agent hold data before it loses some?"]  # buffer
    found = retriever.search(questions, 1)
    assert [f[0].id for f in found] == ["port", "mist", "buffer"]


def test_passages_that_do_not_fit_are_dropped_lowest_ranked_first():
    from knowtune.examples.tokenizer import train_bpe

    tok = train_bpe(list(PASSAGES.values()) * 20, 600)
    ranked = chunks()
    question = [{"role": "user", "content": "Which port?"}]
    roomy = with_passages(question, ranked, "{passages}\n\nQuestion: {question}", tok, 4096, 32)
    assert roomy.chunk_ids == ["port", "mist", "alarm", "buffer"] and roomy.dropped == 0
    assert "[1] port.md" in roomy.messages[-1]["content"] and roomy.messages[-1]["content"].endswith("Which port?")
    tight = with_passages(question, ranked, "{passages}\n\nQuestion: {question}", tok, 120, 32)
    assert tight.chunk_ids == ranked_ids(tight) and 0 < tight.dropped < 4 and tight.chunk_ids[0] == "port"


def ranked_ids(r):
    return ["port", "mist", "alarm", "buffer"][:len(r.chunk_ids)]
