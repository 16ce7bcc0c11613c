"""Continuous batching over one model: every request that is running advances one token per model step.

Written here rather than taken from transformers' ContinuousBatchingManager, which in transformers 5.x has no
per-request seed, decides greedy or sampled for all requests at once, and runs paged attention kernels made
for GPUs. What this needs is small: one thread that owns the model, a queue, and a KV cache of the rows
running now.

How a step works, and why a reply does not depend on the requests it shares a batch with:

- A request joins by a prefill of its own prompt alone (batch of one, no padding), so its first token is
  computed exactly as when it is the only request. Its keys and values then join the batch cache.
- The batch cache holds one row per running request, left-padded: row i's tokens are the last `length_i`
  columns, the columns before them are zeros that the attention mask hides. Each step feeds every row its
  last token at its own position id (`length_i`, not the column), so rotary positions are those of the
  request alone, and appends one column for all rows, which keeps every row right-aligned.
- A row that finishes (end-of-turn token, stop string, max_tokens) or whose client left is removed from the
  cache between steps; leading columns no row uses any more are cut off, so the cache is as wide as the
  longest running request, not as the history of the server.

What differs from a request alone is only the arithmetic's grouping (a matrix product over 32 rows instead
of one, masked zeros in the attention sum): float rounding in the last bits, which changes a greedy choice
only where two tokens tie to within ~1e-6. Sampling draws from each request's own generator, seeded by its
`seed`, so a seeded request gives the same reply whatever else runs.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .text import TextStream

log = logging.getLogger("knowtune.serve")


@dataclass(slots=True)
class Event:
    """What a request hears from the engine: text to add, then one final event with the finish reason."""

    text: str = ""
    finish_reason: str | None = None  # "stop", "length", or None while running; "error" with `error` set
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.finish_reason is not None


@dataclass(slots=True)
class Request:
    prompt_ids: list[int]
    max_new_tokens: int
    emit: Callable[[Event], None]  # called from the engine's thread
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False  # run to max_new_tokens (load tests want replies of a known length)
    cancelled: bool = False
    submitted: float = field(default_factory=time.perf_counter)

    def cancel(self) -> None:
        """Free the request's slot at the next step (a client that disconnected); harmless once finished."""
        self.cancelled = True


@dataclass(slots=True)
class _Row:
    request: Request
    text: TextStream
    generator: Any
    length: int  # tokens in the cache for this row
    last: int = 0  # the token to feed at the next step
    generated: int = 0
    cache: Any = None  # its own prefill cache, until it joins the batch's


class Engine:
    def __init__(self, model: Any, tokenizer: Any, stop_ids: list[int], max_batch: int = 32,
                 max_cache_tokens: int | None = None, prefill_tokens_per_step: int = 2048):
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        cache = DynamicCache(config=model.config)
        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            raise ValueError(f"{type(model).__name__} has sliding-window or other special attention layers; "
                             "knowtune's server batches full-attention models only (serve this one with vLLM)")
        self.model = model
        self.tokenizer = tokenizer  # the engine's own: decoding here while the server encodes prompts elsewhere
        self.stop_ids = set(stop_ids)
        self.max_batch = max_batch
        self.max_cache_tokens = max_cache_tokens or default_cache_tokens(model)
        self.prefill_tokens_per_step = prefill_tokens_per_step
        self.device = next(model.parameters()).device
        self.finished: Counter[str] = Counter()
        self.largest_batch = 0
        self._waiting: deque[Request] = deque()
        self._rows: list[_Row] = []
        self._cache = None  # DynamicCache of the rows, or None when nothing runs
        self._width = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="knowtune-engine", daemon=True)

    # --- the caller's side (any thread) -------------------------------------------------------------

    def start(self) -> "Engine":
        self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def submit(self, request: Request) -> Request:
        with self._cond:
            self._waiting.append(request)
            self._cond.notify()
        return request

    def stats(self) -> dict:
        return {"running": len(self._rows), "waiting": len(self._waiting), "max_batch": self.max_batch,
                "largest_batch": self.largest_batch, "finished": dict(self.finished)}

    # --- the engine's thread ------------------------------------------------------------------------

    def _loop(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                with self._cond:
                    while not self._closed and not self._waiting and not self._rows:
                        self._cond.wait()
                    if self._closed:
                        break
                try:
                    self._drop_cancelled()
                    self._admit()
                    if self._rows:
                        self._step()
                except Exception as err:  # one bad step must not take the server down with it
                    log.exception("generation failed")
                    for row in self._rows:
                        self._end(row, "error", error=f"generation failed: {type(err).__name__}: {err}")
                    self._rows, self._cache, self._width = [], None, 0
        for row in self._rows:
            self._end(row, "error", error="the server is shutting down")
        for request in self._waiting:
            request.emit(Event(finish_reason="error", error="the server is shutting down"))

    def _admit(self) -> None:
        """Prefill waiting requests while there are free rows, cache room and this step's prefill budget."""
        joined, prefilled = [], 0
        while len(self._rows) + len(joined) < self.max_batch:
            with self._cond:
                if not self._waiting:
                    break
                request = self._waiting[0]
                if request.cancelled:
                    self._waiting.popleft()
                    self.finished["cancelled"] += 1
                    continue
                running = self._rows + joined
                bound = max([r.request.max_new_tokens + len(r.request.prompt_ids) for r in running]
                            + [request.max_new_tokens + len(request.prompt_ids)])
                # Every row is as wide as the widest one (left padding), so that is what a new row costs.
                if running and (len(running) + 1) * bound > self.max_cache_tokens:
                    break
                if self._rows and prefilled + len(request.prompt_ids) > self.prefill_tokens_per_step:
                    break  # the rows already running have waited long enough for this step
                self._waiting.popleft()
            prefilled += len(request.prompt_ids)
            try:
                row = self._prefill(request)
            except Exception as err:  # this request's own failure; the batch running goes on
                log.exception("prefill failed")
                self.finished["error"] += 1
                request.emit(Event(finish_reason="error", prompt_tokens=len(request.prompt_ids),
                                   error=f"generation failed: {type(err).__name__}: {err}"))
                continue
            if row is not None:
                joined.append(row)
        if joined:
            self._join(joined)

    def _prefill(self, request: Request):
        import torch
        from transformers import DynamicCache

        ids = torch.tensor([request.prompt_ids], device=self.device)
        cache = DynamicCache(config=self.model.config)
        logits = self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
        row = _Row(request=request, text=TextStream(self.tokenizer, request.stop), generator=_generator(
            request.seed, self.device), length=len(request.prompt_ids))
        row.cache = cache
        return row if self._advance(row, logits[0, -1]) else None

    def _join(self, joined: list[_Row]) -> None:
        import torch
        import torch.nn.functional as F

        def left_pad(t, width):
            return F.pad(t, (0, 0, width - t.shape[-2], 0))

        width = max([self._width] + [row.length for row in joined])
        caches = ([] if self._cache is None else [self._cache]) + [row.cache for row in joined]
        merged = [(torch.cat([left_pad(c.layers[i].keys, width) for c in caches]),
                   torch.cat([left_pad(c.layers[i].values, width) for c in caches]))
                  for i in range(len(caches[0].layers))]
        self._cache = caches[0]  # any of them will do as the container of the merged tensors
        for layer, (keys, values) in zip(self._cache.layers, merged):
            layer.keys, layer.values = keys, values
        for row in joined:
            row.cache = None
        self._rows, self._width = self._rows + joined, width
        self.largest_batch = max(self.largest_batch, len(self._rows))

    def _step(self) -> None:
        import torch

        rows = self._rows
        lengths = torch.tensor([row.length for row in rows], device=self.device)
        width = self._width + 1
        # row i's tokens are its last length_i + 1 columns (the one fed now included)
        mask = (torch.arange(width, device=self.device)[None, :] >= (width - 1 - lengths)[:, None]).long()
        ids = torch.tensor([[row.last] for row in rows], device=self.device)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=lengths[:, None],
                            past_key_values=self._cache, use_cache=True, logits_to_keep=1).logits
        self._width = width
        keep = []
        for i, row in enumerate(rows):
            row.length += 1
            if self._advance(row, logits[i, -1]):
                keep.append(i)
        if len(keep) < len(rows):
            self._remove(keep)

    def _advance(self, row: _Row, logits) -> bool:
        """Choose the row's next token and tell its client; False when the row is done."""
        request = row.request
        if request.cancelled:
            self.finished["cancelled"] += 1
            return False
        token = _choose(logits, request.temperature, request.top_p, row.generator)
        row.generated += 1
        if token in self.stop_ids and not request.ignore_eos:
            self._end(row, "stop")
            return False
        text = row.text.push(token)
        if row.text.stopped:
            self._end(row, "stop", text)
            return False
        if row.generated >= request.max_new_tokens:
            self._end(row, "length", text + row.text.flush())
            return False
        if text:
            request.emit(Event(text=text))
        row.last = token
        return True

    def _end(self, row: _Row, reason: str, text: str = "", error: str | None = None) -> None:
        if reason == "stop" and not text:
            text = row.text.flush()
        self.finished[reason] += 1
        row.request.emit(Event(text=text, finish_reason=reason, prompt_tokens=len(row.request.prompt_ids),
                               completion_tokens=row.generated, error=error))

    def _drop_cancelled(self) -> None:
        keep = [i for i, row in enumerate(self._rows) if not row.request.cancelled]
        if len(keep) < len(self._rows):
            self.finished["cancelled"] += len(self._rows) - len(keep)
            self._remove(keep)

    def _remove(self, keep: list[int]) -> None:
        import torch

        if not keep:
            self._rows, self._cache, self._width = [], None, 0
            return
        self._rows = [self._rows[i] for i in keep]
        needed = max(row.length for row in self._rows)
        index = torch.tensor(keep, device=self.device)
        for layer in self._cache.layers:
            layer.keys = layer.keys[index, :, self._width - needed:]
            layer.values = layer.values[index, :, self._width - needed:]
        self._width = needed


def _choose(logits, temperature: float, top_p: float, generator) -> int:
    import torch

    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # keep the smallest set of tokens whose probability reaches top_p (the first token always)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p
        sorted_probs[outside] = 0.0
        return int(order[torch.multinomial(sorted_probs, 1, generator=generator)])
    return int(torch.multinomial(probs, 1, generator=generator))


def _generator(seed: int | None, device):
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else secrets.randbits(63))
    return generator


def default_cache_tokens(model: Any, budget_bytes: int = 2 << 30) -> int:
    """How many token positions (rows x columns) of keys and values fit in `budget_bytes`."""
    config = model.config.get_text_config()
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    per_token = 2 * config.num_hidden_layers * heads * head_dim * next(model.parameters()).element_size()
    return max(1, budget_bytes // per_token)
