"""The batching engine on a tiny model: requests that join and leave a running batch get the tokens they get
alone, whatever their lengths, and a reply ends where it should."""

import queue

import pytest

from conftest import make_pretrained
from knowtune.chat import prompt_ids
from knowtune.serve.engine import Engine, Request
from knowtune.serve.model import load


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load(make_pretrained(tmp_path_factory.mktemp("engine") / "lamps"))


@pytest.fixture
def engine(loaded):
    engine = Engine(loaded.model, loaded.decoder, loaded.stops, max_batch=8).start()
    yield engine
    engine.close()


def submit(engine, ids, n, **kw):
    events = queue.Queue()
    return engine.submit(Request(prompt_ids=ids, max_new_tokens=n, emit=events.put, ignore_eos=True, **kw)), events


def result(events):
    text = ""
    while True:
        event = events.get(timeout=60)
        text += event.text
        if event.final:
            return text, event.finish_reason, event.completion_tokens


def ids(loaded, question):
    return prompt_ids(loaded.tokenizer, [{"role": "user", "content": question}])


def test_requests_joining_and_leaving_a_running_batch_get_their_answers_alone(loaded, engine):
    prompts = [ids(loaded, "Lamp?"), ids(loaded, "Tell me about the harbour lamps " * 6), ids(loaded, "Keeper"),
               ids(loaded, "What colour does lamp 3 burn at night in the storm season?")]
    lengths = [40, 8, 20, 30]
    alone = [result(submit(engine, p, n)[1]) for p, n in zip(prompts, lengths)]
    # the first starts alone; the others join while it runs: a longer prompt than the batch is wide (the
    # running rows get padded), shorter ones (they get padded), and they leave at different steps
    _, first = submit(engine, prompts[0], lengths[0])
    first_text = first.get(timeout=60).text
    others = [submit(engine, p, n)[1] for p, n in zip(prompts[1:], lengths[1:])]
    together = [result(first)] + [result(e) for e in others]
    together[0] = (first_text + together[0][0],) + together[0][1:]
    assert together == alone
    assert engine.largest_batch >= 2
    assert all(reason == "length" for _, reason, _ in alone)


def test_a_reply_ends_at_an_end_of_turn_token_without_showing_it(loaded):
    import torch

    prompt = ids(loaded, "Which lamp burns red?")
    out = loaded.model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=3, do_sample=False,
                                eos_token_id=None, pad_token_id=loaded.tokenizer.pad_token_id)
    tokens = out[0, len(prompt):].tolist()
    # the same model, told that its third token ends a turn
    engine = Engine(loaded.model, loaded.decoder, [tokens[2]], max_batch=1).start()
    events = queue.Queue()
    engine.submit(Request(prompt_ids=prompt, max_new_tokens=50, emit=events.put))
    text, reason, generated = result(events)
    engine.close()
    assert reason == "stop" and generated == 3
    assert text == loaded.decoder.decode(tokens[:2], skip_special_tokens=True)


def test_a_request_cancelled_while_waiting_never_runs(loaded):
    engine = Engine(loaded.model, loaded.decoder, loaded.stops, max_batch=1).start()
    _, busy = submit(engine, ids(loaded, "Lamp?"), 40)
    request, never = submit(engine, ids(loaded, "Keeper"), 40)
    request.cancel()
    result(busy)
    _, after = submit(engine, ids(loaded, "Harbour"), 5)
    assert result(after)[1] == "length"
    assert never.empty() and engine.finished["cancelled"] == 1
    engine.close()
