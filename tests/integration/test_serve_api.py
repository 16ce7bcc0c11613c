"""knowtune's OpenAI-compatible server, on 127.0.0.1, through the real `openai` client (and raw HTTP where the
client hides what is on the wire): a tiny model with random weights, which is deterministic and says different
things to different prompts, which is all these tests need of it."""

import json
import threading
import time

import httpx
import openai
import pytest

from conftest import make_pretrained
from knowtune.chat import prompt_ids
from knowtune.serve.app import create_app
from knowtune.serve.background import running
from knowtune.serve.model import load

CONTEXT = 4096  # long enough that a reply nobody stops runs far longer than any test waits


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    folder = make_pretrained(tmp_path_factory.mktemp("serve") / "lamps")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": CONTEXT}))
    return load(folder)


@pytest.fixture(scope="module")
def server(loaded):
    with running(create_app(loaded)) as url:
        yield url


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def ask(client, question, **kw):
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model="lamps", messages=[{"role": "user", "content": question}], **kw)


def sse(url, body, headers=None):
    """The data lines of a streamed response, as sent."""
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def test_health_and_models(server, client):
    health = httpx.get(server + "/health").json()
    assert health["status"] == "ok" and health["model"] == "lamps"
    [model] = client.models.list().data
    assert model.id == "lamps" and model.owned_by == "knowtune"


def test_chat_reply_counts_its_tokens_and_says_why_it_ended(client, loaded):
    reply = ask(client, "Which lamp burns red?", max_tokens=12, extra_body={"ignore_eos": True})
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    expected_prompt = len(prompt_ids(loaded.tokenizer, [{"role": "user", "content": "Which lamp burns red?"}]))
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (expected_prompt, 12)
    assert reply.usage.total_tokens == expected_prompt + 12
    again = ask(client, "Which lamp burns red?", max_completion_tokens=12, extra_body={"ignore_eos": True})
    assert again.choices[0].message.content == choice.message.content  # greedy; the newer name for max_tokens


def test_streamed_chat_is_the_same_reply_and_ends_with_done(server, client):
    plain = ask(client, "Tell me about the harbour", max_tokens=16).choices[0].message.content
    chunks = list(ask(client, "Tell me about the harbour", max_tokens=16, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == plain
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.usage is None for c in chunks)

    body = {"model": "lamps", "messages": [{"role": "user", "content": "Tell me about the harbour"}],
            "max_tokens": 16, "temperature": 0, "stream": True}
    lines = sse(server + "/v1/chat/completions", body)
    assert lines[-1] == "[DONE]"
    sent = [json.loads(line) for line in lines[:-1]]
    # no usage key at all unless asked for: clients that read chunk["choices"][0] on every chunk keep working
    assert all("usage" not in c and len(c["choices"]) == 1 for c in sent)


def test_streamed_usage_only_when_asked_for(server, client):
    chunks = list(ask(client, "Tell me about the harbour", max_tokens=10, stream=True,
                      stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    *content, last = chunks
    assert last.choices == [] and last.usage.completion_tokens == 10
    assert last.usage.total_tokens == last.usage.prompt_tokens + 10
    assert all(c.usage is None and len(c.choices) == 1 for c in content)


def test_completions_plain_and_streamed(client):
    reply = client.completions.create(model="lamps", prompt="The lamp room", max_tokens=10, temperature=0,
                                      extra_body={"ignore_eos": True})
    assert reply.object == "text_completion" and reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 10
    streamed = client.completions.create(model="lamps", prompt="The lamp room", max_tokens=10, temperature=0,
                                         stream=True, extra_body={"ignore_eos": True})
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_stop_strings_are_cut_even_split_across_tokens(server, client):
    question = "What does the keeper write in the log?"
    pieces = [c.choices[0].delta.content for c in ask(client, question, max_tokens=40, stream=True,
                                                       extra_body={"ignore_eos": True})
              if c.choices and c.choices[0].delta.content]
    full = "".join(pieces)
    # a stop string made of the end of one token's text and the start of the next one's
    for k in range(len(pieces) - 1):
        a, b = pieces[k], pieces[k + 1]
        if len(a) >= 2 and len(b) >= 2 and "\ufffd" not in a + b:
            stop = a[-2:] + b[:2]
            at = full.find(stop)
            if at == len("".join(pieces[:k + 1])) - 2:
                break
    else:
        pytest.fail(f"no two neighbouring tokens to split a stop string over in {pieces}")

    cut = ask(client, question, max_tokens=40, stop=[stop, "never appears"], extra_body={"ignore_eos": True})
    assert cut.choices[0].message.content == full[:at]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < 40  # generation ended at the token that completed the stop string

    streamed = [c for c in ask(client, question, max_tokens=40, stop=stop, stream=True,
                               extra_body={"ignore_eos": True})]
    # the start of the stop string was held back, not sent and then taken back
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == full[:at]
    assert streamed[-1].choices[0].finish_reason == "stop"

    text = client.completions.create(model="lamps", prompt="The lamp room", max_tokens=30, temperature=0,
                                     extra_body={"ignore_eos": True}).choices[0].text
    stop = text[5:9]
    cut = client.completions.create(model="lamps", prompt="The lamp room", max_tokens=30, temperature=0,
                                    stop=stop, extra_body={"ignore_eos": True})
    assert cut.choices[0].text == text[:text.find(stop)] and cut.choices[0].finish_reason == "stop"


def test_a_seed_makes_sampling_repeatable(client):
    def sample(seed):
        return ask(client, "Name a lamp", max_tokens=16, temperature=1.0, top_p=0.9, seed=seed,
                   extra_body={"ignore_eos": True}).choices[0].message.content

    assert sample(7) == sample(7)
    assert len({sample(7), sample(8), sample(9)}) > 1


def post(server, body: bytes | str, headers=None):
    headers = {"Content-Type": "application/json", **(headers or {})}
    return httpx.post(server + "/v1/chat/completions", content=body, headers=headers, timeout=60)


def error_of(response) -> str:
    body = response.json()
    assert set(body["error"]) >= {"message", "type", "code"}  # OpenAI's error shape
    return body["error"]["message"]


def test_bad_requests_get_400_with_a_message_not_a_traceback(server, client):
    for body, says in [(b'{"model": "lamps", "messages": [', "not valid JSON"),
                       (b"\xff\xfe", "not valid JSON"),
                       (b'[1, 2]', "must be a JSON object"),
                       (b'"hello"', "must be a JSON object"),
                       (b'{"model": "lamps"}', "messages: Field required"),
                       (json.dumps({"model": "lamps", "messages": [{"role": "user", "content": "hi"}],
                                    "temperature": "hot"}), "temperature"),
                       (json.dumps({"model": "lamps", "messages": [{"role": "user", "content": "hi"}], "n": 2}),
                        "n=2 is not supported")]:
        response = post(server, body)
        assert response.status_code == 400, (body, response.text)
        assert says in error_of(response)
        assert "Traceback" not in response.text
    assert post(server, b"{}", {"Content-Type": "text/plain"}).status_code == 415

    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])


def test_requests_beyond_the_context_get_400_with_the_numbers(client, loaded):
    messages = [{"role": "user", "content": "the lamp " * 3000}]
    prompt = len(prompt_ids(loaded.tokenizer, messages))
    assert prompt > CONTEXT
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="lamps", messages=messages, max_tokens=10)
    assert (f"This model's maximum context length is {CONTEXT} tokens. However, you requested {prompt + 10} "
            f"tokens ({prompt} in the messages, 10 in the completion).") in err.value.message

    short = [{"role": "user", "content": "the lamp"}]
    prompt = len(prompt_ids(loaded.tokenizer, short))
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="lamps", messages=short, max_tokens=CONTEXT)
    assert f"you requested {prompt + CONTEXT} tokens ({prompt} in the messages, {CONTEXT} in the completion)" \
        in err.value.message
    with pytest.raises(openai.BadRequestError, match="in the prompt"):
        client.completions.create(model="lamps", prompt="lamp", max_tokens=CONTEXT)


def test_a_body_too_large_gets_413(server):
    huge = json.dumps({"model": "lamps", "messages": [{"role": "user", "content": "x" * (2 << 20)}]})
    response = post(server, huge)
    assert response.status_code == 413 and "larger than" in error_of(response)

    def chunked():  # no Content-Length to refuse it by: counted as it arrives
        for _ in range(3):
            yield huge.encode()[: 1 << 20]

    response = post(server, chunked())
    assert response.status_code == 413 and "larger than" in error_of(response)


def test_an_api_key_is_required_when_set(loaded):
    with running(create_app(loaded, api_key="s3cret-key")) as url:
        for key in (None, "wrong"):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            response = post(url, json.dumps({"model": "lamps", "messages": [{"role": "user", "content": "hi"}]}),
                            headers)
            assert response.status_code == 401 and error_of(response)
            assert response.json()["error"]["code"] == "invalid_api_key"
            assert httpx.get(url + "/v1/models", headers=headers).status_code == 401
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
        good = openai.OpenAI(base_url=url + "/v1", api_key="s3cret-key", max_retries=0)
        assert ask(good, "hi", max_tokens=3).choices[0].message.content is not None
        assert httpx.get(url + "/health").status_code == 200  # liveness needs no key


def test_a_host_header_naming_another_site_is_refused(server):
    # DNS rebinding: a page on evil.example whose name now points at 127.0.0.1
    response = httpx.get(server + "/v1/models", headers={"Host": "evil.example"})
    assert response.status_code == 400


def test_32_concurrent_greedy_requests_each_get_the_answer_they_get_alone(server, client):
    questions = [f"Tell me about lamp {i} and its keeper" if i % 2 else f"What colour is lamp {i}?"
                 for i in range(32)]

    def one(q):
        return ask(client, q, max_tokens=16).choices[0].message.content

    alone = [one(q) for q in questions]
    assert len(set(alone)) >= 16, "the model's answers should depend on the prompt"
    together: list = [None] * 32
    start = threading.Barrier(32)

    def worker(i):
        start.wait()
        together[i] = one(questions[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone
    assert httpx.get(server + "/health").json()["largest_batch"] >= 8  # they really were batched


def wait_for(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_client_that_disconnects_frees_its_slot(loaded):
    with running(create_app(loaded, max_batch=2)) as url:
        def health():
            return httpx.get(url + "/health").json()

        body = {"model": "lamps", "messages": [{"role": "user", "content": "Tell me everything"}], "stream": True,
                "max_tokens": CONTEXT - 100, "temperature": 0, "ignore_eos": True}
        for _ in range(2):  # both slots, streaming thousands of tokens, then gone after the first chunks
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as response:
                lines = response.iter_lines()
                assert next(lines).startswith("data: ")
        with pytest.raises(httpx.ReadTimeout):  # a plain request whose client gives up
            httpx.post(url + "/v1/chat/completions", json={**body, "stream": False}, timeout=1.0)
        assert wait_for(lambda: health()["finished"].get("cancelled", 0) == 3 and health()["running"] == 0), \
            health()
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        results = []
        threads = [threading.Thread(target=lambda: results.append(ask(client, "hi", max_tokens=8)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 4 and all(r.choices[0].message.content is not None for r in results)
        assert health()["finished"].get("length", 0) + health()["finished"].get("stop", 0) == 4
