"""The run's tokenizer, settled before anything counts tokens.

For a model built from scratch: byte-level BPE with GPT-2 pre-tokenisation
(so llama.cpp's `gpt-2` pre-tokenizer reproduces it), trained on the ingested
documents, with ChatML control tokens and a pad token that is not EOS. For a
pretrained model: its own tokenizer, saved here so every later stage uses it.
"""

from __future__ import annotations

from pathlib import Path

from ..base_model import base_location
from ..records import Document, Example, read_jsonl
from ..settings import TokenizerSettings
from ..chat import CHATML, CHATML_TOKENS, DOC_END, turn_end_ids, with_system_prompt


def run_tokenizer(settings: TokenizerSettings, documents: Path, base_dir: Path, out: Path) -> dict:
    base_model, system_prompt = settings.base_model, settings.system_prompt
    if base_model == "scratch":
        texts = [d.text for d in read_jsonl(documents / "documents.jsonl", Document)]
        external = documents / "external.jsonl"
        if external.is_file():  # chat data read as it is is trained on too
            texts += [m["content"] for e in read_jsonl(external, Example) for m in e.messages or []]
        tokenizer = train_bpe(texts, settings.tokenizer.vocab_size)
    else:
        tokenizer = load_pretrained(base_location(base_model, base_dir))
    if system_prompt:
        tokenizer.chat_template = with_system_prompt(tokenizer.chat_template, system_prompt)
    tokenizer.save_pretrained(out)
    return {
        "vocab_size": len(tokenizer),
        "eos": tokenizer.eos_token,
        "pad": tokenizer.pad_token,
        "from": "trained on documents" if base_model == "scratch" else base_model,
    }


def train_bpe(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [CHATML_TOKENS["eos"], CHATML_TOKENS["pad"], *CHATML_TOKENS["extra"]]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=CHATML_TOKENS["eos"],
        pad_token=CHATML_TOKENS["pad"],
        extra_special_tokens=CHATML_TOKENS["extra"],
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def load_pretrained(name: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)
    own = tokenizer.get_vocab()
    if tokenizer.chat_template is None:
        # A base model with no chat format learns ChatML; train/ resizes the embeddings for the new tokens.
        tokenizer.add_special_tokens({"additional_special_tokens": CHATML_TOKENS["extra"]})
        tokenizer.add_special_tokens({"eos_token": CHATML_TOKENS["eos"]})
        tokenizer.chat_template = CHATML
    if tokenizer.pad_token is None or tokenizer.pad_token_id in turn_end_ids(tokenizer):
        # Pad equal to an end of turn masks it out of the loss and the model never learns to stop. The model's
        # own document-end token serves (SmolLM2's <|endoftext|>): no new token, so the vocabulary stays the
        # one the model (and its GGUF) has; else a new pad token, whose embedding row is added.
        if DOC_END in own and own[DOC_END] not in turn_end_ids(tokenizer):
            tokenizer.pad_token = DOC_END
        else:
            tokenizer.add_special_tokens({"pad_token": CHATML_TOKENS["pad"]})
    return tokenizer
