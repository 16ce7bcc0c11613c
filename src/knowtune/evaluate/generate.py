"""Answers to many prompts at once: batched, greedy by default, each stopping at an end token or a stop string.

Why a loop of our own rather than `model.generate` per batch: evaluation asks hundreds of questions of very
different lengths (a short question; the same question behind a retrieved passage), and `model.generate`
keeps a batch together until its longest answer ends, pads every prompt to the batch's longest, and
re-copies the whole key/value cache at every step (DynamicCache grows by concatenation). Here the batch is a
pool of rows: a row whose answer ends leaves it, and a waiting prompt takes its place, so every forward pass
works on up to `batch_size` live answers; prompts are taken longest first, so a newcomer is shorter than the
rows it joins and is left-padded to them; the cache is allocated once per batch and written in place.

Exactness: each row's positions count its own tokens from 0 at its first real token and its padding is masked
out (and padded cache columns are zeros, never stale values), so a prompt gets the tokens it would get alone.
Greedy in float32 that held token for token in tests/unit/test_generate.py (against transformers' own
one-at-a-time generate) and on 256 real SmolLM2 answers in benchmarks/eval_speed.py; a kernel may still round
a row differently in another batch shape, which could only flip a near-tie between two tokens.

Decoding is plain: the chosen token is the most likely one (or a sample), with no repetition penalty or other
processor from the model's generation_config, so every model in a comparison is decoded the same way.

Not compiled, and no static cache: on the 2-core CPU the quickstart targets, the forward pass is matrix
products (about 80% of a decoding step, measured with torch.profiler) that torch.compile leaves as they are;
a compiled decoding step with a static cache took 367 ms against 377 ms eager (batch 16, 200-token prompts,
one thread) after 155 s of compiling. The time goes to prefill, which batching cannot make cheaper.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from ..chat import prompt_ids, stop_ids
from ..progress import bar

# Prompts prefilled in one forward pass hold at most this many (padded) tokens: past a few thousand, a bigger pass
# is no faster per token on a CPU and only costs memory (attention scores grow with the square of the length).
PREFILL_TOKENS = 4096
# Finished rows are dropped, and waiting prompts let in, once this share of the batch is free: each compaction
# copies the whole cache once, about what one decoding step reads, so doing it for every single finished row
# costs more than carrying a few dead rows for a few steps.
REFILL_SHARE = 0.25


@dataclass
class Generation:
    text: str
    stopped: bool  # ended with an end-of-turn token (or a stop string) rather than running out of tokens
    new_tokens: int


def generate(model: Any, tokenizer: Any, conversations: list[list[dict]], max_new_tokens: int,
             batch_size: int, what: str = "generating", *, temperature: float = 0.0, top_p: float = 1.0,
             seed: int = 0, stop: list[str] | None = None) -> list[Generation]:
    """One answer per conversation, in input order.

    Greedy unless `temperature` > 0; then sampled (nucleus sampling with `top_p`), each conversation from its own
    random stream seeded by `seed` and its index, so a seed gives the same answers whatever the batch size.
    `stop`: strings that end an answer too; the answer's text ends before the first one, and `new_tokens`
    counts the tokens up to the one that completed it (an end token itself is not counted)."""
    if not conversations:
        return []
    prompts = [prompt_ids(tokenizer, c) for c in conversations]
    limit = getattr(model.config, "max_position_embeddings", None)
    rows = [_Row(i, p, _budget(len(p), max_new_tokens, limit)) for i, p in enumerate(prompts)]
    if temperature > 0:
        for row in rows:
            row.noise = torch.Generator().manual_seed(seed * 1_000_003 + row.index)
    pick = _Picker(temperature, top_p)
    ends = _Ends(tokenizer, stop_ids(tokenizer), stop or [])

    was_on, was_training = next(model.parameters()).device, model.training
    # On a GPU when there is one, for this call only: the caller's model is where it was afterwards.
    moved = torch.cuda.is_available() and was_on.type == "cpu"
    device = torch.device("cuda") if moved else was_on
    if moved:
        model.to(device)
    model.eval()
    try:
        with torch.inference_mode(), bar() as progress:
            task = progress.add_task(what, total=len(rows))
            _run(model, rows, batch_size, pick, ends, device, lambda n: progress.advance(task, n))
    finally:
        if moved:
            model.to(was_on)
        model.train(was_training)
    return [Generation(r.text, r.stopped, len(r.tokens)) for r in rows]


@dataclass(slots=True)
class _Row:
    index: int
    prompt: list[int]
    budget: int
    tokens: list[int] = field(default_factory=list)
    done: bool = False
    stopped: bool = False
    text: str = ""
    noise: Any = None  # the row's own torch.Generator when sampling


def _budget(prompt_len: int, max_new_tokens: int, limit: int | None) -> int:
    # Never past the positions the model was trained on; at least one token, as before.
    room = max_new_tokens if limit is None else limit - prompt_len
    return max(1, min(max_new_tokens, room))


def _run(model, rows: list[_Row], batch_size: int, pick, ends, device, finished) -> None:
    waiting = deque(sorted(rows, key=lambda r: -len(r.prompt)))  # longest first (stable: input order among equals)
    group = max(1, int(batch_size * REFILL_SHARE))
    live: _Batch | None = None
    while waiting or live is not None:
        open_slots = batch_size - (live.alive if live else 0)
        if waiting and open_slots >= min(group, len(waiting)):
            newcomers = [waiting.popleft() for _ in range(min(open_slots, len(waiting)))]
            live = _join(live and live.compacted(), _prefill(model, newcomers, pick, ends, device, finished))
        elif live is not None and live.size - live.alive >= group:
            live = live.compacted()
        if live is None or not live.alive:  # every row of it has ended (an answer can end at its first token)
            live = None
            continue
        logits = live.step(model)
        finished(live.accept(pick(logits, live.rows), ends))


class _Batch:
    """Rows decoding together: their cache, mask and positions, and the token each feeds next.

    A row that has ended stays (its outputs ignored) until compacted() drops it with its cache rows."""

    def __init__(self, rows: list[_Row], cache: Cache, mask, positions, last, room: int):
        self.rows, self.cache, self.mask, self.positions, self.last = rows, cache, mask, positions, last
        self.room = room  # most steps any row still needs: what the cache must hold beyond the mask's width

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def alive(self) -> int:
        return sum(not r.done for r in self.rows)

    def step(self, model):
        """One forward pass for every row: the logits of each one's next token."""
        ones = torch.ones((self.size, 1), dtype=self.mask.dtype, device=self.mask.device)
        self.mask = torch.cat([self.mask, ones], dim=1)
        out = model(input_ids=self.last[:, None], attention_mask=self.mask, position_ids=self.positions[:, None],
                    past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.positions = self.positions + 1
        self.room -= 1
        return out.logits[:, -1, :]

    def accept(self, tokens, ends) -> int:
        """Record each live row's next token; the number of rows that ended with it."""
        ended = 0
        for row, token in zip(self.rows, tokens.tolist()):
            if not row.done:
                ended += ends.add(row, token)
        self.last = tokens.to(self.last.device)
        return ended

    def compacted(self) -> "_Batch | None":
        """This batch without its ended rows, nor the columns that are padding in every row left."""
        keep = [k for k, r in enumerate(self.rows) if not r.done]
        if len(keep) == self.size or not keep:
            return self if keep else None
        at = torch.tensor(keep, device=self.mask.device)
        mask = self.mask[at]
        first = int(mask.any(0).to(torch.int8).argmax())
        room = max(self.rows[k].budget - len(self.rows[k].tokens) for k in keep)
        self.cache = Cache(layers=[layer.select(at, first, room) for layer in self.cache.layers])
        self.rows = [self.rows[k] for k in keep]
        self.mask, self.positions, self.last, self.room = mask[:, first:], self.positions[at], self.last[at], room
        return self


def _prefill(model, rows: list[_Row], pick, ends, device, finished) -> "_Batch | None":
    """Run the prompts of `rows` (sorted longest first) and pick each one's first token."""
    batches = []
    start = 0
    while start < len(rows):
        width = len(rows[start].prompt)  # the longest of this group
        n = max(1, min(len(rows) - start, PREFILL_TOKENS // max(1, width)))
        group = rows[start:start + n]
        start += n
        ids = torch.zeros((n, width), dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for k, row in enumerate(group):  # left padding: every prompt ends where its answer starts
            ids[k, width - len(row.prompt):] = torch.tensor(row.prompt)
            mask[k, width - len(row.prompt):] = 1
        # Each row counts its positions from its first real token; padding sits at 0 and is masked out.
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
        room = max(r.budget for r in group)
        cache = Cache(layers=[_Layer(room) for _ in range(_layers(model))])
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                    use_cache=True, logits_to_keep=1)
        batch = _Batch(group, cache, mask, positions[:, -1] + 1, ids[:, -1], room)
        finished(batch.accept(pick(out.logits[:, -1, :], group), ends))
        batches.append(batch)
    joined = None
    for batch in batches:
        joined = _join(joined, batch)
    return joined


def _join(a: "_Batch | None", b: "_Batch | None") -> "_Batch | None":
    """One batch of both: the narrower one's rows are left-padded to the wider one's width."""

    if a is None or b is None:
        return a if b is None else b
    width = max(a.mask.shape[1], b.mask.shape[1])
    room = max(a.room, b.room)

    def pad(mask):
        return torch.nn.functional.pad(mask, (width - mask.shape[1], 0))

    layers = [_Layer.joined(x, y, width, room) for x, y in zip(a.cache.layers, b.cache.layers)]
    return _Batch(a.rows + b.rows, Cache(layers=layers), torch.cat([pad(a.mask), pad(b.mask)]),
                  torch.cat([a.positions, b.positions]), torch.cat([a.last, b.last]), room)


def _layers(model) -> int:
    config = model.config.get_text_config(decoder=True)
    types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    if any(t != "full_attention" for t in types) or getattr(config, "sliding_window", None) and getattr(
            config, "use_sliding_window", True):
        raise ValueError(f"knowtune's generation supports full-attention models; this one has layers {sorted(set(types))}"
                         " or a sliding window")
    return len(types)


class _Picker:
    """The next token of every row from its logits: the best one, or a sample from the row's own stream."""

    def __init__(self, temperature: float, top_p: float):
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, logits, rows: list[_Row]):
        if self.temperature <= 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # Keep the smallest set of most likely tokens whose mass reaches top_p (the most likely one always).
            outside = sorted_probs.cumsum(-1) - sorted_probs >= self.top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        # argmax(p / E) with E ~ Exp(1) draws from p (the exponential race), one draw per row from its own
        # generator: a row's tokens do not depend on which rows share its batch.
        noise = torch.stack([torch.empty(probs.shape[-1]).exponential_(generator=r.noise) for r in rows])
        return (probs / noise.to(probs.device)).argmax(-1)


class _Ends:
    """Whether an answer ends: a stop token, a stop string in its text, or its budget spent."""

    def __init__(self, tokenizer, stop_tokens: list[int], stop_strings: list[str]):
        self.tokenizer, self.stop_tokens, self.stop_strings = tokenizer, set(stop_tokens), [s for s in stop_strings if s]

    def add(self, row: _Row, token: int) -> int:
        if token in self.stop_tokens:
            self._end(row, stopped=True)
            return 1
        row.tokens.append(token)
        if self.stop_strings:
            text = self._decode(row)
            cut = min((k for k in (text.find(s) for s in self.stop_strings) if k >= 0), default=-1)
            if cut >= 0:
                self._end(row, stopped=True, text=text[:cut])
                return 1
        if len(row.tokens) >= row.budget:
            self._end(row, stopped=False)
            return 1
        return 0

    def _decode(self, row: _Row) -> str:
        return self.tokenizer.decode(row.tokens, skip_special_tokens=True)

    def _end(self, row: _Row, stopped: bool, text: str | None = None) -> None:
        row.done, row.stopped = True, stopped
        row.text = self._decode(row) if text is None else text


# --- the key/value cache -------------------------------------------------------------------------------------


class _Layer(CacheLayerMixin):
    """One model layer's keys and values, in a buffer sized for the whole answer.

    transformers' Cache asks a layer object per model layer to store and return keys and values; this one writes
    each step's column in place instead of copying the whole cache (DynamicLayer's torch.cat, which at batch 16
    and 400 columns moves about as many bytes per step as the model's weights), and it can drop rows and leading
    columns and join another batch's layer."""

    is_compileable = False
    is_sliding = False

    def __init__(self, room: int):
        super().__init__()
        self.room, self.length = room, 0  # room: free columns to leave after the first update

    def lazy_initialization(self, key_states, value_states) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self.keys is None or self.length + n > self.keys.shape[-2]:
            self._grow(key_states, self.length + n + self.room)
        self.keys[:, :, self.length:self.length + n] = key_states
        self.values[:, :, self.length:self.length + n] = value_states
        self.length += n
        return self.keys[:, :, :self.length], self.values[:, :, :self.length]

    def _grow(self, like, capacity: int) -> None:
        keys = torch.empty((*like.shape[:2], capacity, like.shape[-1]), dtype=like.dtype, device=like.device)
        values = torch.empty_like(keys)
        if self.keys is not None:
            keys[:, :, :self.length] = self.keys[:, :, :self.length]
            values[:, :, :self.length] = self.values[:, :, :self.length]
        self.keys, self.values = keys, values

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    def select(self, rows, first: int, room: int) -> "_Layer":
        """A layer of the given rows only, without the first `first` columns."""
        layer = _Layer(room)
        layer.lazy_initialization(self.keys, self.values)
        layer.length = self.length - first
        layer.keys = torch.empty((len(rows), self.keys.shape[1], layer.length + room, self.keys.shape[-1]),
                                 dtype=self.keys.dtype, device=self.keys.device)
        layer.values = torch.empty_like(layer.keys)
        layer.keys[:, :, :layer.length] = self.keys[rows, :, first:self.length]
        layer.values[:, :, :layer.length] = self.values[rows, :, first:self.length]
        return layer

    @staticmethod
    def joined(a: "_Layer", b: "_Layer", width: int, room: int) -> "_Layer":
        """A layer of a's rows then b's, each right-aligned in `width` columns (zeros where padded)."""
        layer = _Layer(room)
        layer.lazy_initialization(a.keys, a.values)
        layer.length = width
        rows = a.keys.shape[0] + b.keys.shape[0]
        layer.keys = torch.zeros((rows, a.keys.shape[1], width + room, a.keys.shape[-1]),
                                 dtype=a.keys.dtype, device=a.keys.device)
        layer.values = torch.zeros_like(layer.keys)
        for part, offset in ((a, 0), (b, a.keys.shape[0])):
            end = offset + part.keys.shape[0]
            layer.keys[offset:end, :, width - part.length:width] = part.keys[:, :, :part.length]
            layer.values[offset:end, :, width - part.length:width] = part.values[:, :, :part.length]
        return layer
