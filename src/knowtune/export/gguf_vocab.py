"""The tokenizer half of a GGUF file: tokens, their types, merges, special ids, chat template, pre-tokenizer.

Written the way llama.cpp's convert_hf_to_gguf.py writes a byte-level BPE vocabulary (`get_vocab_base`,
`_set_vocab_gpt2`, `get_vocab_base_pre`), with two deliberate differences, each for a failure peers' users hit:

- EOS is the token the chat template ends an assistant turn with (<|im_end|> for ChatML), not whatever
  `eos_token` says: llama.cpp stops generating at EOS, and a model fine-tuned to end its turns with
  <|im_end|> whose GGUF says <|endoftext|> never stops. The other end tokens the model declares become
  the end-of-text (eot) and end-of-message (eom) ids, which llama.cpp also stops at.
- The pre-tokenizer is identified by llama.cpp's own checksum table where the tokenizer is a published one,
  and otherwise only when tokenizer.json shows exactly GPT-2's pre-tokenisation; anything else is refused
  instead of written as "default", which llama.cpp loads with a warning and tokenises differently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from .gguf_error import GGUFError

# llama.cpp's test string, copied verbatim from get_vocab_base_pre in convert_hf_to_gguf.py: the token ids a
# tokenizer gives it, hashed, name the pre-tokenizer llama.cpp must use.
CHKTXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ "
    "🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you "
    "sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)

# The entries of llama.cpp's table (convert_hf_to_gguf.py, get_vocab_base_pre) for the tokenizers of the model
# families this exporter writes. The hash identifies a published vocabulary, not a pre-tokenizer rule, so a
# tokenizer trained per corpus is never in it.
KNOWN_PRE_TOKENIZERS = {
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",  # openai-community/gpt2
    "0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4": "gpt-2",  # evilfreelancer/ruGPT3XL
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # meta-llama/Meta-Llama-3-8B
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",  # Smaug-Llama-3-70B
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # HuggingFaceTB/SmolLM-135M
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen/Qwen1.5-7B
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen/Qwen3-Embedding-0.6B
    "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": "deepseek-r1-qwen",
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",  # Mistral-Nemo-Base-2407
}

# The split GPT-2 made before byte-level BPE; tokenizers' ByteLevel(use_regex=True) applies exactly this one,
# and llama.cpp's "gpt-2" pre-tokenizer reproduces it.
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5  # gguf.TokenType, as llama.cpp reads them


@dataclass
class Vocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    pre_from: str  # "checksum" (llama.cpp's table) or "tokenizer.json" (GPT-2 pre-tokenisation recognised)
    special: dict[str, int]  # bos, eos, eot, eom, unk, pad: only those the tokenizer has
    add_bos: bool
    add_eos: bool
    chat_template: str | list[dict[str, str]] | None
    eos_from: str
    notes: list[str] = field(default_factory=list)


def read_vocab(model_dir: Path, vocab_size: int, model_ends: list[int]) -> Vocab:
    """The GGUF vocabulary of the tokenizer in `model_dir`, padded to the model's `vocab_size`; `model_ends` are the
    end tokens the model folder declares (declared_eos)."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not getattr(tokenizer, "is_fast", False):
        raise GGUFError(f"{model_dir}: only a fast (tokenizer.json) byte-level BPE tokenizer can be written to GGUF")
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model, decoder = backend.get("model", {}), (backend.get("decoder") or {}).get("type")
    if model.get("type") != "BPE" or model.get("byte_fallback") or decoder != "ByteLevel":
        raise GGUFError(f"{model_dir}: the tokenizer is not a byte-level BPE (llama.cpp's gpt2 vocabulary); "
                        f"model {model.get('type')}, decoder {decoder}")
    pre, pre_from = pre_tokenizer(tokenizer, backend)
    tokens, types = token_list(tokenizer, vocab_size)
    merges = gguf.SpecialVocab(model_dir, load_merges=True).merges
    if not merges:
        raise GGUFError(f"{model_dir}: the tokenizer has no BPE merges to write")

    special = {name: getattr(tokenizer, f"{name}_token_id") for name in ("bos", "unk", "pad")}
    special = {k: v for k, v in special.items() if v is not None}
    eos, eos_from = end_of_turn(tokenizer)
    ends = [i for i in dict.fromkeys([*model_ends, tokenizer.eos_token_id]) if i is not None]
    if eos is None:
        if not ends:
            raise GGUFError(f"{model_dir}: no end token: no chat template to find one in, and no eos_token_id")
        eos, eos_from = ends[0], "eos_token_id (no end-of-turn token in the chat template)"
    special["eos"] = eos
    # The model's other end tokens (knowtune's own models also stop at <|endoftext|>, a document's end) go where
    # llama.cpp stops too: EOT, then EOM (Llama 3.1's <|eom_id|> is an EOM by name). It has no key for a fourth,
    # though it also stops at a few token texts it knows (<|endoftext|>, <|eot_id|>, ...).
    notes = []
    for other in (i for i in ends if i != eos):
        free = [slot for slot in ("eot", "eom") if slot not in special]
        if tokens[other] == "<|eom_id|>" and "eom" in free:
            free = ["eom"]
        if free:
            special[free[0]] = other
        else:
            notes.append(f"end token {tokens[other]!r} has no GGUF key left (eos, eot, eom taken)")

    # What the tokenizer does, not what tokenizer_config.json claims: transformers 5 saves no add_bos_token.
    probe = tokenizer("a")["input_ids"]
    add_bos = bool(probe) and "bos" in special and probe[0] == special["bos"]
    add_eos = bool(probe) and len(probe) > 1 and probe[-1] == tokenizer.eos_token_id
    if add_eos and tokenizer.eos_token_id != eos:
        raise GGUFError(f"{model_dir}: the tokenizer appends {tokenizer.eos_token!r} to every text, but llama.cpp can "
                        f"only append its EOS, which is the end-of-turn token {tokens[eos]!r}")
    template = tokenizer.chat_template
    if isinstance(template, dict):  # named templates: llama.cpp reads the "default" one, the rest by name
        template = [{"name": name, "template": text} for name, text in template.items()]
    if template is None:
        notes.append("no chat template: llama.cpp and Ollama will guess the chat format")
    return Vocab(tokens, types, merges, pre, pre_from, special, add_bos, add_eos, template, eos_from, notes)


def declared_eos(model_dir: Path) -> list[int]:
    """Every end token the model folder declares, generation_config.json first (it is what generate() stops at)."""
    ids = []
    for name in ("generation_config.json", "config.json"):
        if (model_dir / name).is_file():
            ids.append(json.loads((model_dir / name).read_text()).get("eos_token_id"))
    flat = [i for x in ids for i in (x if isinstance(x, list) else [x]) if i is not None]
    return list(dict.fromkeys(flat))


def pre_tokenizer(tokenizer: Any, backend: dict) -> tuple[str, str]:
    """llama.cpp's name for how this tokenizer splits text before BPE, and how it was recognised."""
    chkhsh = sha256(str(tokenizer.encode(CHKTXT)).encode()).hexdigest()
    if chkhsh in KNOWN_PRE_TOKENIZERS:
        return KNOWN_PRE_TOKENIZERS[chkhsh], "checksum"
    # knowtune's scratch tokenizer is trained per corpus, so its checksum is in no table. Its pre-tokenisation is
    # recognised from tokenizer.json instead, and only when it is exactly GPT-2's: no normalizer, GPT-2's split
    # (ByteLevel's own regex, or the same regex as an isolated Split before a regex-free ByteLevel), no prefix
    # space, and merges applied to every word (ignore_merges would look words up whole first). That is the one
    # case llama.cpp's "gpt-2" pre-tokenizer reproduces token for token; anything near it is refused, because
    # llama.cpp would load it without complaint and split text differently.
    if _is_gpt2_pretokenisation(backend):
        return "gpt-2", "tokenizer.json"
    raise GGUFError(
        f"unknown pre-tokenizer: chktxt hash {chkhsh} is not in llama.cpp's table ("
        f"{', '.join(sorted(set(KNOWN_PRE_TOKENIZERS.values())))} are known here) and tokenizer.json is not GPT-2 "
        f"pre-tokenisation (normalizer {_kind(backend.get('normalizer'))}, pre_tokenizer "
        f"{_kind(backend.get('pre_tokenizer'))}); a GGUF with a guessed one would tokenise differently in llama.cpp"
    )


def _is_gpt2_pretokenisation(backend: dict) -> bool:
    model, pre = backend.get("model", {}), backend.get("pre_tokenizer") or {}
    if backend.get("normalizer") is not None or model.get("ignore_merges"):
        return False
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return False
    if pre.get("type") == "Sequence" and len(pre.get("pretokenizers", [])) == 1:
        pre = pre["pretokenizers"][0]
    if pre.get("type") == "ByteLevel":
        return pre.get("use_regex", True) and not pre.get("add_prefix_space")
    if pre.get("type") == "Sequence" and len(pre.get("pretokenizers", [])) == 2:
        split, byte_level = pre["pretokenizers"]
        return (split.get("type") == "Split" and split.get("pattern", {}).get("Regex") == GPT2_SPLIT
                and split.get("behavior") == "Isolated" and not split.get("invert")
                and byte_level.get("type") == "ByteLevel" and not byte_level.get("use_regex", True)
                and not byte_level.get("add_prefix_space"))
    return False


def _kind(node: dict | None) -> str:
    if node is None:
        return "none"
    if node.get("type") == "Sequence":
        inner = node.get("pretokenizers") or node.get("normalizers") or []
        return "Sequence[" + ", ".join(_kind(n) for n in inner) + "]"
    return str(node.get("type"))


def token_list(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Every id's token text and type, as get_vocab_base writes them; ids the tokenizer lacks are [PADn], unused."""
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise GGUFError(f"the tokenizer has ids up to {max(vocab.values())} but the model only {vocab_size} embeddings")
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
        elif i in added:
            token = reverse[i]
            if not added[i].normalized:  # llama.cpp matches added tokens as they appear in text
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False))
            tokens.append(token)
            # The tokenizer's own special flag, not the converter's "looks special" guess (<|...|>): a token a user
            # added as text is user-defined in llama.cpp, matched in text and printed, as transformers does.
            types.append(CONTROL if added[i].special else USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(NORMAL)
    return tokens, types


def end_of_turn(tokenizer: Any) -> tuple[int | None, str]:
    """The token the chat template closes an assistant turn with, found by rendering one and looking after it."""
    if not tokenizer.chat_template:
        return None, "no chat template"
    probe = "knowtune probe reply"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hello"}, {"role": "assistant", "content": probe}], tokenize=False)
    except Exception as err:  # a template that insists on its own conversation shape says nothing here
        return None, f"chat template would not render a probe conversation ({type(err).__name__})"
    if not isinstance(text, str) or probe not in text:
        return None, "chat template dropped the probe reply"
    after = text[text.rindex(probe) + len(probe):].lstrip(" ")
    added = {t.content: i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    found = max((c for c in added if after.startswith(c)), key=len, default=None)
    if found is None:
        return None, "chat template ends a turn with no special token"
    return added[found], "chat template end of turn"
