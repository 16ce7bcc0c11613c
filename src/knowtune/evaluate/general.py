"""General questions the base and the tuned model both answer: forgetting shows as lost accuracy.

The set ships with knowtune (general_questions.jsonl), written for it: arithmetic,
everyday facts, unit conversions, and code in languages (Ruby, Lua, SQL) that a
Python/Go/TypeScript corpus does not teach. Answers are a number, a word or a
short name, so a reply can be scored by rule rather than by a judge model.

Scoring (`general_correct`) reads only the reply's first sentence: the model is
asked for a few words with a small token budget, and what it says after its
first sentence is elaboration or drift, where a listed answer turns up by chance.
Text is normalised alike on both sides (lowercase, punctuation dropped except
inside numbers, articles dropped, number words as digits), then:

- a text answer is correct when it occurs as a whole-word sequence in the first
  sentence;
- a numeric answer is correct when it is the first or the last number of the
  first sentence, after dropping every number the question itself contains.
  A reply that works the sum out ("17 + 25 = 42") or restates the question
  ("There are 300 centimetres in 3 metres") repeats the question's numbers,
  which must not count; of the numbers left, the answer comes first in a direct
  reply ("A spider has 8 legs and 2 body parts") and last in a worked one
  ("1 metre is 100 cm, so 3 metres is 300 cm"). Any other number in between is
  a step, not the answer.

This only works if no accepted answer is contained in its own question (the
answer "elephant" to "Which is bigger, a mouse or an elephant?" would match any
reply that restates the question); the tests check that for every question.
Known limits: a negation ("not Paris") or a hedge listing the answer among
others ("Paris or Lyon") counts as correct; an answer said only in a second
sentence ("Sure! It is Paris.") counts as wrong; a code answer that is also an
English word (end, where, update, delete) matches prose that uses the word, so
those questions are phrased with other words ("removes rows", "filters rows")
that a reply restating them repeats instead; the right number with a garbled
unit ("one gram is equal to 1000 grams") counts as correct.
"""

from __future__ import annotations

import json
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from importlib.resources import files

QUESTIONS_FILE = "general_questions.jsonl"

# Appended to every question. Told nothing, SmolLM2-135M-Instruct opens with "To
# find 6 times 7, we can use..." and runs out of its ~20 tokens before the answer
# (30% right on this set; 38% with this suffix, 81 in 100 replies ending on their
# own against 27). A system message did as well (39%), but it replaces the system
# prompt the chat template or the fine-tuning run put there, so base and tuned
# model would be asked in a context neither was trained in; a suffix leaves it.
GENERAL_INSTRUCTION = "Answer in a few words."


def load_general_questions() -> list[dict]:
    """The packaged questions: id, category, question, answers (accepted forms)."""
    text = files(__package__).joinpath(QUESTIONS_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def general_messages(question: str, instruction: str | None = GENERAL_INSTRUCTION) -> list[dict[str, str]]:
    """The conversation that asks one general question (no system message: the model's own default stays)."""
    content = question if not instruction else f"{question} {instruction}"
    return [{"role": "user", "content": content}]


def general_correct(response: str, answers: list[str], question: str = "") -> bool:
    """Whether the reply gives one of the accepted answers; `question` is used to ignore its own numbers."""
    whole = normalise_tokens(response)
    sentence = normalise_tokens(first_sentence(response))
    asked = {t for t in normalise_tokens(question) if _is_number(t)}
    numbers = [t for t in sentence if _is_number(t) and t not in asked]
    for answer in answers:
        target = normalise_tokens(answer)
        if not target:
            continue
        if whole == target:
            return True
        if len(target) == 1 and _is_number(target[0]):
            if numbers and target[0] in (numbers[0], numbers[-1]):
                return True
        elif _contains(sentence, target):
            return True
    return False


_SENTENCE_END = re.compile(r"(?<=[.!?])\s|\n")


def first_sentence(text: str) -> str:
    """The first non-empty line, up to its first sentence end (a period inside 3.5 or 'e.g.x' does not end it)."""
    for part in _SENTENCE_END.split(text.strip()):
        if part.strip():
            return part
    return ""


# A number with optional thousands commas and decimals (1,000 and 3.5); a comma
# not followed by exactly three digits separates a list ("1,2,3"). Words are
# letter/digit runs, so "H2O" stays one token and "to_s" becomes "to s".
_TOKEN = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|[^\W_]+")
_ARTICLES = {"a", "an", "the"}
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i >= 2}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}


def normalise_tokens(text: str) -> list[str]:
    """Lowercase tokens with numbers in one canonical digit form and articles dropped."""
    # NFKC turns the subscript in CO₂ into a 2 and full-width digits into digits.
    raw = _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())
    tokens = [_canonical(t) if t[0].isdigit() and _is_number(t.replace(",", "")) else t for t in raw]
    return [t for t in _number_words(tokens) if t not in _ARTICLES]


def _canonical(number: str) -> str:
    value = Decimal(number.replace(",", ""))
    # 8.0 and 8, 3.50 and 3.5 are the same answer.
    return format(value.normalize(), "f") if value != value.to_integral() else str(int(value))


def _is_number(token: str) -> bool:
    try:
        Decimal(token)
    except InvalidOperation:
        return False
    return token[0].isdigit()


def _number_words(tokens: list[str]) -> list[str]:
    """Spelled-out numbers as digits: "forty two" -> 42, "three hundred and five" -> 305, "5 thousand" -> 5000.

    Written by hand: the libraries that do this (word2number, text2num) either
    reject a sentence with other words in it or pull in a locale stack for a few
    dozen words. A run is cut where English would start a new number
    ("one two" is 1 then 2), so a counted list is not summed.
    """
    out: list[str] = []
    i = 0
    while i < len(tokens):
        value, j = _read_number(tokens, i)
        if j > i:
            out.append(str(value))
            i = j
        else:
            out.append(tokens[i])
            i += 1
    return out


def _read_number(tokens: list[str], i: int) -> tuple[int, int]:
    """The number spelled from tokens[i] on, and the index after it; (0, i) when none starts there."""
    # last: the kind of the previous word, to know where a number ends; scale: the last scale word's value.
    total, current, start, last, scale = 0, 0, i, None, 0
    if i < len(tokens) and tokens[i].isdigit() and i + 1 < len(tokens) and tokens[i + 1] in _SCALES:
        current, last, i = int(tokens[i]), "digits", i + 1
    while i < len(tokens):
        word = tokens[i]
        if word in _UNITS and last in (None, "tens", "scale"):
            if last == "tens" and _UNITS[word] >= 10:
                break
            current += _UNITS[word]
            last = "units"
        elif word in _TENS and last in (None, "scale"):
            current += _TENS[word]
            last = "tens"
        elif word in _SCALES and (last != "scale" or _SCALES[word] > scale):  # "two hundred thousand"
            scale = _SCALES[word]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
            last = "scale"
        elif word == "and" and last == "scale" and i + 1 < len(tokens) and (
                tokens[i + 1] in _UNITS or tokens[i + 1] in _TENS):
            pass
        elif word in _ARTICLES and last is None and i + 1 < len(tokens) and tokens[i + 1] in _SCALES:
            pass  # "a hundred"
        else:
            break
        i += 1
    if last is None:
        return 0, start
    return total + current, i


def _contains(tokens: list[str], target: list[str]) -> bool:
    n = len(target)
    return any(tokens[k : k + n] == target for k in range(len(tokens) - n + 1))
