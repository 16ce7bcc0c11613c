"""Does llama.cpp run a GGUF file as transformers runs the model folder it came from? Measured, per file.

Three checks, each aimed at a way exported GGUFs fail silently:
- special tokens: llama.cpp's EOS is the chat template's end-of-turn token and stops generation (a GGUF
  whose EOS is another token never stops);
- tokenisation: llama.cpp's token ids equal transformers' for a fixed set of awkward strings (a wrong or
  missing pre-tokenizer, or added tokens lost in conversion, change them);
- greedy decoding: the same prompt ids, the same greedy continuation, token for token. Where they part, the
  report gives the step and transformers' margin there (top-1 minus top-2 logit): a margin of a few
  hundredths is a near-tie that float rounding may tip either way, a margin of several logits is a bug.

llama.cpp runs with a float32 KV cache here: its default f16 cache adds rounding of its own, and the
question is whether the file is right.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .gguf_llama_log import llama_cpp_warnings, quiet_llama_cpp
from .gguf_vocab import CHKTXT, declared_eos, end_of_turn

# Strings chosen for what trips tokenizers: indentation and tabs in code, accents, CJK, emoji (with joiners),
# leading and repeated spaces, digits in runs, contractions, Windows line ends.
PARITY_TEXTS = [
    "def take(self, item, count=1):\n\tif count > self.items[item]:\n\t\traise ValueError(item)\n"
    "        self.items[item] -= count  # four spaces, then two tabs above\n",
    "class Lamp:\n    \"\"\"A lamp.\"\"\"\n\n    def __init__(self):\n        self.oil = 0.5\n",
    "Café, naïve résumé, façade, Ærøskøbing, São Paulo, Dvořák, Ελληνικά, Ûber",
    "灯台の守り人は毎晩ランプを点けます。 我想在灯塔工作。 등대지기",
    "Emoji: 🚀 🦙🦙 😶‍🌫️ ✅ 👩‍👩‍👧 🇫🇷",
    " one leading space",
    "    four leading spaces and trailing ones   ",
    "\n\nnewlines first\n\n\n",
    "Numbers: 3 33 333 3333 12345678 3.14159 1,000,000 2026-11-05 0x1F",
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like tea? We'Ve a'lL",
    "Windows line ends\r\nand a tab\tin the middle\r\n",
    "Cafe\u0301 and re\u0301sume\u0301, accents decomposed (NFD): a normalizer changes these",
    CHKTXT,
]

PROMPTS = [
    "What does the inventory module do?",
    "Write a Python function that adds two numbers.",
    "How many lamps does the harbour have?",
    "Explain what a lighthouse keeper does at night.",
    "List three colours.",
    "Tell me about the pricing rules.",
]


def load_llama(gguf_path: Path, n_ctx: int = 512, logits_all: bool = False):
    """llama.cpp with `gguf_path` loaded, silent: no log lines on stderr, float32 KV cache."""
    import gguf
    import llama_cpp

    quiet_llama_cpp()
    # A context longer than the model's own makes llama.cpp warn (n_ctx_seq > n_ctx_train) at every load.
    fields = gguf.GGUFReader(gguf_path).fields
    arch = fields["general.architecture"].contents()
    n_ctx = min(n_ctx, int(fields[f"{arch}.context_length"].contents()))
    llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=n_ctx, logits_all=logits_all, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    return llm


def parity_texts(tokenizer: Any) -> list[str]:
    """The fixed strings, plus this tokenizer's own: a conversation as its chat template renders it, and every
    added token in running text."""
    texts = list(PARITY_TEXTS)
    if tokenizer.chat_template:
        texts.append(tokenizer.apply_chat_template(
            [{"role": "system", "content": "You keep the lighthouse."},
             {"role": "user", "content": "How much oil is left?"},
             {"role": "assistant", "content": "Twelve litres, 3 cans."}], tokenize=False))
    added = [t.content for t in tokenizer.added_tokens_decoder.values()]
    texts.append(" and ".join(f"x{t}y" for t in added))
    texts.append("".join(f" {t}\n" for t in added))
    return texts


def tokenisation_parity(llm: Any, tokenizer: Any, texts: list[str] | None = None) -> dict:
    """llama.cpp's ids against transformers' for each text (special tokens parsed, none added)."""
    texts = parity_texts(tokenizer) if texts is None else texts
    mismatches = []
    for text in texts:
        ours = tokenizer(text, add_special_tokens=False)["input_ids"]
        theirs = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if ours != theirs:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            mismatches.append({"text": text[:80], "at": at, "transformers": ours[at:at + 5],
                               "llama_cpp": theirs[at:at + 5]})
    return {"identical": not mismatches, "strings": len(texts), "mismatches": mismatches}


def special_tokens(llm: Any, tokenizer: Any, ends: list[int] = ()) -> dict:
    """llama.cpp's EOS, whether it is the token the chat template ends an assistant turn with, and which of the
    model's end tokens (`ends`: what generate() stops at) llama.cpp would not stop at."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    expected, _ = end_of_turn(tokenizer)
    eos = llm.token_eos()
    return {"eos": eos, "end_of_turn": expected,
            "eos_is_end_of_turn": expected is None or eos == expected,
            "end_of_turn_stops": expected is None or bool(llama_cpp.llama_vocab_is_eog(vocab, expected)),
            "ends_not_stopping": [i for i in ends if not llama_cpp.llama_vocab_is_eog(vocab, i)]}


def greedy_parity(llm: Any, model: Any, tokenizer: Any, prompts: list[str] | None = None,
                  new_tokens: int = 32) -> dict:
    """Greedy continuations of chat prompts in llama.cpp and transformers (float32), compared token for token."""
    rows = [_compare(llm, model, tokenizer, prompt, new_tokens) for prompt in (prompts or PROMPTS)]
    return {"identical": sum(r["identical"] for r in rows), "prompts": len(rows), "new_tokens": new_tokens,
            "per_prompt": rows}


def _compare(llm: Any, model: Any, tokenizer: Any, prompt: str, new_tokens: int) -> dict:
    import torch
    from transformers import GenerationConfig

    messages = [{"role": "user", "content": prompt}]
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = prompt
    ids = tokenizer(text, add_special_tokens=tokenizer.chat_template is None)["input_ids"]

    # A plain greedy config: a repetition penalty or temperature in the model's own would not be greedy.
    config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, output_logits=True,
                              return_dict_in_generate=True,
                              eos_token_id=model.generation_config.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                              else tokenizer.eos_token_id)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             generation_config=config)
    hf = out.sequences[0, len(ids):].tolist()
    hf_logits = [step[0].float().numpy() for step in out.logits]

    cpp, cpp_logits = _llama_greedy(llm, ids, new_tokens)
    at = next((i for i, (a, b) in enumerate(zip(hf, cpp)) if a != b), None)
    if at is None and len(hf) != len(cpp):
        at = min(len(hf), len(cpp))  # one stopped where the other went on: they disagree on an end token
    row = {"prompt": prompt, "identical": at is None, "transformers_tokens": len(hf), "llama_cpp_tokens": len(cpp),
           "first_divergence": at, "margin": None, "llama_cpp_margin": None,
           "first_step_max_logit_diff": float(np.abs(hf_logits[0] - cpp_logits[0]).max())}
    if at is not None:
        if at < len(hf_logits) and at < len(cpp_logits):
            row["margin"] = _margin(hf_logits[at])
            row["llama_cpp_margin"] = _margin(cpp_logits[at])
        else:
            stopper = hf if len(hf) < len(cpp) else cpp
            row["note"] = (f"{'transformers' if stopper is hf else 'llama.cpp'} stopped at token {stopper[-1]} "
                           "and the other did not")
    return row


def _llama_greedy(llm: Any, ids: list[int], new_tokens: int) -> tuple[list[int], list[np.ndarray]]:
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    llm.reset()
    llm.eval(ids)
    tokens, logits = [], []
    for _ in range(new_tokens):
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,)).copy()
        token = int(np.argmax(row))
        tokens.append(token)
        logits.append(row)
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        llm.eval([token])
    return tokens, logits


def _margin(logits: np.ndarray) -> float:
    top2 = np.partition(logits, -2)[-2:]
    return float(top2[1] - top2[0])


def check_gguf(gguf_path: Path, model_dir: Path, *, greedy: bool = True, new_tokens: int = 32,
               prompts: list[str] | None = None) -> dict:
    """Every check on one file against the model folder it was written from: the report the export stage keeps."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ends = declared_eos(Path(model_dir))
    with llama_cpp_warnings() as warnings:
        llm = load_llama(gguf_path)
        try:
            report = {"gguf": str(gguf_path), "special_tokens": special_tokens(llm, tokenizer, ends),
                      "tokenisation": tokenisation_parity(llm, tokenizer)}
            if greedy:
                model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
                report["greedy"] = greedy_parity(llm, model, tokenizer, prompts, new_tokens)
        finally:
            llm.close()
    report["llama_cpp_warnings"] = [line.strip() for line in warnings if line.strip()]
    return report
