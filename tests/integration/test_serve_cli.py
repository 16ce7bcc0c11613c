"""`knowtune serve` and `knowtune chat` as a user runs them: the terminal chat against a model folder and
against a running server, and the server command itself in a process of its own."""

import io
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest
from rich.console import Console

from conftest import make_pretrained
from knowtune.serve.app import create_app
from knowtune.serve.background import running
from knowtune.serve.chat import ChatError, LocalModel, repl
from knowtune.serve.model import load

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_pretrained(tmp_path_factory.mktemp("chat") / "lamps")


class Writes(io.StringIO):
    """A terminal that remembers how many times it was written to."""

    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, text):
        self.writes += 1
        return super().write(text)


def chat(target, lines, max_new_tokens=12):
    out = Writes()
    repl(target, max_new_tokens, None, io.StringIO("".join(f"{line}\n" for line in lines)),
         Console(file=out, width=200, color_system=None))
    return out


def fresh_reply(folder, messages, max_new_tokens=12):
    model = LocalModel(folder)
    try:
        return "".join(model.reply(messages, max_new_tokens))
    finally:
        model.close()


def test_terminal_chat_with_a_folder_streams_and_reset_starts_over(folder):
    out = chat(str(folder), ["Which lamp burns red?", "And the next one?", "/reset", "And the next one?", "/exit"])
    text = out.getvalue()
    assert text.count("model> ") == 3 and "(conversation cleared)" in text
    first = fresh_reply(folder, [{"role": "user", "content": "Which lamp burns red?"}])
    alone = fresh_reply(folder, [{"role": "user", "content": "And the next one?"}])
    assert first and alone
    before, after = text.split("(conversation cleared)")
    assert f"model> {first}\n" in before
    assert f"model> {alone}\n" in after  # after /reset the question is asked as if for the first time
    assert f"model> {alone}\n" not in before  # before it, the earlier turn changed the answer
    assert out.writes >= 3 * 5  # each reply arrived in pieces, not at once


def test_terminal_chat_with_a_running_server(folder, monkeypatch):
    loaded = load(folder)
    with running(create_app(loaded, api_key="k3y")) as url:
        monkeypatch.setenv("KNOWTUNE_API_KEY", "k3y")
        text = chat(url, ["Which lamp burns red?", "/reset", "And the next one?"]).getvalue()
        client = openai.OpenAI(base_url=url + "/v1", api_key="k3y", max_retries=0)
        for question in ("Which lamp burns red?", "And the next one?"):
            expected = client.chat.completions.create(model="lamps", messages=[{"role": "user", "content": question}],
                                                      max_tokens=12, temperature=0).choices[0].message.content
            assert f"model> {expected}\n" in text
        assert text.count("model> ") == 2 and "(conversation cleared)" in text

        monkeypatch.setenv("KNOWTUNE_API_KEY", "wrong")
        with pytest.raises(ChatError, match="Incorrect API key"):
            chat(url, ["Which lamp burns red?"])


def knowtune(*args, **kw):
    return subprocess.run([sys.executable, "-m", "knowtune", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=300, **kw)


def test_chat_with_no_server_there_says_so_in_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    proc = knowtune("chat", f"http://127.0.0.1:{port}", input="hi\n")
    assert proc.returncode == 2 and "no model server answering" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_serve_refuses_rag_for_now_in_one_line(folder):
    proc = knowtune("serve", folder, "--rag")
    assert proc.returncode == 2
    assert "retrieval needs the run's dataset; not available yet" in proc.stdout and not proc.stderr


@pytest.mark.slow  # ~25 s: a process of its own that imports torch and loads the model
def test_serve_command_serves_on_loopback(folder):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "knowtune", "serve", str(folder), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
            time.sleep(0.2)
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="lamps", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=5, temperature=0)
        assert reply.choices[0].message.content is not None
        page = httpx.get(url + "/")
        assert page.status_code == 200 and "knowtune chat" in page.text and '"lamps"' in page.text
        # bound to loopback only: the machine's other addresses do not answer
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
        if listening.returncode == 0:
            assert all("127.0.0.1:" in line for line in listening.stdout.splitlines()), listening.stdout
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=60)
    assert f"serving lamps at http://127.0.0.1:{port}/v1" in out
    assert "Traceback" not in err
