"""Language and quality rules for prose, never for code.

Code fails prose rules by design: symbols, short lines, lines that repeat
(`}`, `return None`), identifiers longer than any word. So each example is
first reduced to the prose in it (prose_of), and an example without prose
always passes. The rules are those of Gopher's quality filter (Rae et al.
2021, "Scaling Language Models", appendix A), with the limits in GopherConfig.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from ..config import GopherConfig, QualityConfig
from ..records import Example, to_dict
from .language import detect_languages  # noqa: F401  (the stage takes the whole API from here)
from .steps import Dropped, StepResult

# Answers of these rules are prose even when the document is code: a docstring,
# a heading's paragraph, a commit message, a teacher's explanation.
PROSE_RULES = ("docstring", "heading", "change_reason", "teacher")
# Fewer words than this outside code fences is a caption for code ("Use `f`:"), not prose.
MIN_PROSE_WORDS = 3
# Gopher's limits were set on web pages of 50 words and more. In a two-sentence
# answer one name said twice ("the lighthouse store") is already a third of the
# characters, so the bigram rule waits for text long enough to be repetitive.
BIGRAM_MIN_WORDS = 50

BULLET = re.compile(r"^(?:[•·]|[-*](?:\s|$))")
# Markdown heading markers are structure, and "#123" is an issue or PR reference
# in change history; Gopher's '#' rule aims at hashtag-laden web text, so neither counts.
_HEADING_MARK = re.compile(r"^[ \t]{0,3}#{1,6}(?=\s|$)", re.M)
_HASH = re.compile(r"#(?!\d)")
_URL = re.compile(r"https?://[^\s)\]>]*")
_PUNCT = string.punctuation + "“”‘’«»„…–—"
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)")
# The header the build stage puts on every raw chunk, naming its file or change.
_RAW_HEADER = re.compile(r"\A(?:File: [^\n]*|Commit [0-9a-f]+: [^\n]*|Pull request #\d+: [^\n]*)\n\n")
# A change document starts with a metadata block (commit id and date, or PR number,
# state, URL and branches) ending at the first blank line; its message follows.
_CHANGE_HEADER = re.compile(r"\A(?:commit [0-9a-f]+\n|PR #\d+: )")
_AFTER_MESSAGE = re.compile(r"^(?:Files changed:|Diff:|diff --git |Merge commit: )", re.M)


def gopher_reason(text: str, cfg: GopherConfig) -> str | None:
    """None if `text` passes every rule, else the first rule it fails with its value and limit."""
    # Tokens without a letter or digit (list dashes, table pipes, arrows) are
    # layout: counted as words they would fail every Markdown list on the letter rule.
    words = [w for w in text.split() if any(c.isalnum() for c in w)]
    n = len(words)
    if n < cfg.min_words:
        return f"word count {n} < {cfg.min_words}"
    if n == 0:
        return None
    bare = [w.strip(_PUNCT) for w in words]
    # A URL is a reference, not a word: in the web pages Gopher measured, links
    # were markup; in Markdown and commit messages they sit in the text.
    lengths = [len(w) for w in (u.strip(_PUNCT) for u in _URL.sub(" ", text).split()) if w]
    mean = sum(lengths) / len(lengths) if lengths else 0.0
    if mean < cfg.min_mean_word_length:
        return f"mean word length {_show(mean, cfg.min_mean_word_length, 1)} < {cfg.min_mean_word_length}"
    if mean > cfg.max_mean_word_length:
        return f"mean word length {_show(mean, cfg.max_mean_word_length, 1)} > {cfg.max_mean_word_length}"
    # Each share below ignores a single occurrence: in a one-line answer one number,
    # one '#' or one list dash would otherwise be a fifth of the text or all of it.
    hashes = _share(len(_HASH.findall(_HEADING_MARK.sub("", text))), n)
    if hashes > cfg.max_symbol_ratio:
        return f"symbol ratio {_show(hashes, cfg.max_symbol_ratio)} > {cfg.max_symbol_ratio} ('#' per word)"
    ellipses = _share(text.count("...") + text.count("…"), n)
    if ellipses > cfg.max_symbol_ratio:
        return f"symbol ratio {_show(ellipses, cfg.max_symbol_ratio)} > {cfg.max_symbol_ratio} ('...' per word)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    bullets = _share(sum(bool(BULLET.match(line)) for line in lines), len(lines))
    if bullets > cfg.max_bullet_lines:
        return f"bullet lines {_show(bullets, cfg.max_bullet_lines)} > {cfg.max_bullet_lines}"
    trailing = _share(sum(line.endswith(("...", "…")) for line in lines), len(lines))
    if trailing > cfg.max_ellipsis_lines:
        return f"ellipsis lines {_show(trailing, cfg.max_ellipsis_lines)} > {cfg.max_ellipsis_lines}"
    alpha = 1 - _share(sum(not any(c.isalpha() for c in w) for w in words), n)
    if alpha < cfg.min_alpha_words:
        return f"words with letters {_show(alpha, cfg.min_alpha_words)} < {cfg.min_alpha_words}"
    duplicates = _share(len(lines) - len(set(lines)), len(lines))
    if duplicates > cfg.max_duplicate_lines:
        return f"duplicate lines {_show(duplicates, cfg.max_duplicate_lines)} > {cfg.max_duplicate_lines}"
    if n >= BIGRAM_MIN_WORDS:
        share, bigram = _top_bigram(bare)
        if share > cfg.max_top_bigram_share:
            limit = cfg.max_top_bigram_share
            return f"top bigram share {_show(share, limit)} > {limit} ({bigram!r})"
    return None


def _share(count: int, total: int) -> float:
    return count / total if count > 1 else 0.0


def _show(value: float, limit: float, digits: int = 2) -> str:
    # Never "0.80 < 0.8": more digits until the printed value differs from the limit.
    text = f"{value:.{digits}f}"
    while float(text) == limit and value != limit and digits < 6:
        digits += 1
        text = f"{value:.{digits}f}"
    return text


def _top_bigram(words: list[str]) -> tuple[float, str]:
    """Share of word characters inside the most frequent word bigram; a bigram seen once repeats nothing."""
    lowered = [w.lower() for w in words if w]
    counts = Counter(zip(lowered, lowered[1:]))
    if not counts:
        return 0.0, ""
    (a, b), count = counts.most_common(1)[0]
    if count < 2:
        return 0.0, ""
    return count * (len(a) + len(b)) / sum(len(w) for w in lowered), f"{a} {b}"


def prose_of(example: Example) -> str | None:
    """The prose a language or quality judgement looks at, or None when the example is code.

    Language identification and the Gopher rules are for prose, never for code,
    because code fails them by design (symbols, short lines, repeated lines).

    - external chat data (metadata["origin"] == "external"): the assistant replies joined;
    - raw examples of a doc or page (metadata["doc_kind"]): the chunk without its
      "File: ..." header; of a change: the commit or PR message only (after the
      commit id, date or PR state block, before "Files changed:", "Diff:" or
      "diff --git"), and None for a later chunk of a change (its file list, diff,
      or the rest of a long discussion); of code or an unknown kind: None;
    - instruction, qa and preference examples: the (chosen) assistant answer,
      except when the document is code and the answer's metadata["rule"] is not
      one of PROSE_RULES (a signature, a file's code); a change's answer keeps
      its message only.
    Everywhere, ``` and ~~~ fenced blocks are removed first, and what remains is
    prose only with at least MIN_PROSE_WORDS words.
    """
    meta = example.metadata
    if meta.get("origin") == "external":
        replies = [m["content"] for m in example.messages or [] if m.get("role") == "assistant"]
        return _prose("\n\n".join(replies))
    doc_kind = meta.get("doc_kind")
    if example.kind == "raw":
        text = _RAW_HEADER.sub("", example.text or "", count=1)
        if doc_kind in ("doc", "page"):
            return _prose(text)
        if doc_kind == "change" and _CHANGE_HEADER.match(text):
            return _prose(_change_message(text))
        return None
    if doc_kind == "code" and meta.get("rule") not in PROSE_RULES:
        return None
    answer = _answer(example)
    if doc_kind == "change":
        answer = _change_message(answer)
    return _prose(answer)


def _answer(example: Example) -> str:
    replies = example.chosen if example.kind == "preference" else example.messages
    replies = [m for m in replies or [] if m.get("role") == "assistant"]
    return replies[-1]["content"] if replies else ""


def _change_message(text: str) -> str:
    if _CHANGE_HEADER.match(text):
        text = text.partition("\n\n")[2]
    end = _AFTER_MESSAGE.search(text)
    return text[: end.start()] if end else text


def _prose(text: str) -> str | None:
    kept, fenced = [], False
    for line in text.splitlines():
        # An unclosed fence (a chunk cut inside a code block) runs to the end.
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    prose = "\n".join(kept).strip()
    words = sum(any(c.isalpha() for c in w) for w in prose.split())
    return prose if words >= MIN_PROSE_WORDS else None


def quality_filter(examples: list[Example], cfg: QualityConfig,
                   languages_of: list[tuple[str | None, float]]) -> StepResult:
    """Drop (step "quality") examples whose prose is confidently in another language than
    cfg.languages, or fails a Gopher rule when cfg.gopher.enabled. Code and examples without
    prose pass. `languages_of` is detect_languages' output for [prose_of(e) or "" for e in examples]."""
    if len(languages_of) != len(examples):
        raise ValueError(f"{len(languages_of)} language results for {len(examples)} examples")
    wanted = {c.lower() for c in cfg.languages} if cfg.languages else None
    result = StepResult([])
    for example, (language, confidence) in zip(examples, languages_of):
        prose = prose_of(example)
        reason = None
        if prose is not None and wanted and language and language not in wanted \
                and confidence >= cfg.min_language_confidence:
            reason = f"language {language} ({confidence:.2f}), not one of {', '.join(cfg.languages)}"
        elif prose is not None and cfg.gopher.enabled:
            reason = gopher_reason(prose, cfg.gopher)
        if reason:
            result.dropped.append(Dropped("quality", reason, to_dict(example)))
        else:
            result.kept.append(example)
    return result
