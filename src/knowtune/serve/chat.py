"""A terminal chat with a trained model, streamed token by token: the model in a folder (or run directory),
or one a server already runs (`knowtune chat http://127.0.0.1:8000`, knowtune's or any OpenAI-compatible one).

A folder's model runs through the server's own engine, so the terminal and the server render prompts and
stop replies the same way. Replies are greedy, as the evaluation's are.
"""

from __future__ import annotations

import os
import queue
from pathlib import Path
from typing import Iterator, TextIO

from rich.console import Console
from rich.markup import escape

HELP = "Type a message and press Enter. /reset starts over, /exit (or Ctrl-D) leaves; Ctrl-C stops a reply."


class ChatError(Exception):
    """A reply that could not be made; the conversation goes on without it."""


class LocalModel:
    def __init__(self, path: Path):
        from .app import Prompts
        from .engine import Engine
        from .model import load

        self.loaded = load(path)
        self.where = str(path)
        self._prompts = Prompts(self.loaded.tokenizer)
        self._engine = Engine(self.loaded.model, self.loaded.decoder, self.loaded.stops, max_batch=1).start()

    def reply(self, messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        from .engine import Request
        from .protocol import APIError

        try:
            ids = self._prompts.chat(messages)
        except APIError as err:
            raise ChatError(err.message) from None
        room = self.loaded.context - len(ids)
        if room <= 0:
            raise ChatError(f"the conversation ({len(ids)} tokens) fills the model's context "
                            f"({self.loaded.context}); /reset to start over")
        events: queue.Queue = queue.Queue()
        request = self._engine.submit(Request(prompt_ids=ids, max_new_tokens=min(max_new_tokens, room),
                                              emit=events.put))
        try:
            while True:
                event = events.get()
                if event.error:
                    raise ChatError(event.error)
                if event.text:
                    yield event.text
                if event.final:
                    return
        finally:
            request.cancel()  # Ctrl-C in the middle of a reply

    def close(self) -> None:
        self._engine.close()


class RemoteModel:
    def __init__(self, url: str):
        import openai

        base = url.rstrip("/")
        base = base if base.endswith("/v1") else base + "/v1"
        self.where = base
        # a key is required by the server only when it has one; the client insists on sending something
        self._client = openai.OpenAI(base_url=base, api_key=os.environ.get("KNOWTUNE_API_KEY") or "none",
                                     max_retries=0)
        self._errors = (openai.APIError,)
        try:
            self.model = self._client.models.list().data[0].id
        except openai.APIConnectionError as err:
            raise ChatError(f"{base}: no model server answering there ({err})") from None
        except openai.APIStatusError as err:
            raise ChatError(f"{base}: {err.message}") from None

    def reply(self, messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        try:
            stream = self._client.chat.completions.create(model=self.model, messages=messages, stream=True,
                                                          temperature=0, max_tokens=max_new_tokens)
            with stream:
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
        except self._errors as err:
            message = getattr(err, "message", None) or str(err)
            raise ChatError(message) from None

    def close(self) -> None:
        self._client.close()


def open_model(target: str):
    """A server's URL, or a run directory or model folder."""
    if target.startswith(("http://", "https://")):
        return RemoteModel(target)
    from .model import find_model

    return LocalModel(find_model(Path(target)))


def repl(target: str, max_new_tokens: int, system: str | None, stdin: TextIO, console: Console) -> None:
    model = open_model(target)
    start = [{"role": "system", "content": system}] if system else []
    history = list(start)
    interactive = stdin.isatty()
    console.print(f"[dim]{model.where} · {HELP}[/dim]")
    try:
        while True:
            if interactive:
                console.print("[bold]you>[/bold] ", end="")
            try:
                line = stdin.readline()
            except KeyboardInterrupt:
                break
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text == "/exit":
                break
            if text == "/reset":
                history = list(start)
                console.print("[dim](conversation cleared)[/dim]")
                continue
            history.append({"role": "user", "content": text})
            reply = _stream_reply(model, history, max_new_tokens, console)
            if reply is None:
                history.pop()  # a failed turn is not part of the conversation
            else:
                history.append({"role": "assistant", "content": reply})
    finally:
        model.close()


def _stream_reply(model, history, max_new_tokens: int, console: Console) -> str | None:
    console.print("[bold cyan]model>[/bold cyan] ", end="")
    parts: list[str] = []
    try:
        for piece in model.reply(history, max_new_tokens):
            parts.append(piece)
            console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
    except ChatError as err:
        console.print()
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
        return None
    except KeyboardInterrupt:
        console.print(" [dim](stopped)[/dim]")
        return "".join(parts)
    console.print()
    return "".join(parts)
