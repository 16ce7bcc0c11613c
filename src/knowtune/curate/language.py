"""Which natural language a piece of prose is in, with lingua (offline: its models are in the wheel).

Top-level and picklable so the curate stage can map it over batches on a
process pool or Dask; each process builds its detector once and keeps it.
"""

from __future__ import annotations

import re

from lingua import IsoCode639_1, LanguageDetector, LanguageDetectorBuilder

# The detector chooses among these plus the wanted languages. Never among the
# wanted ones only: with [en] alone every text would come out English. Not among
# all 75 either: on 1 MB of English package READMEs the full set was 2.5 times
# slower and called link-heavy English paragraphs Latin or Yoruba. These are the
# most common languages of the web and of software teams, plus the languages
# with a script of their own (Greek to Telugu), which lingua's rule engine
# recognises at almost no cost. Text in a language outside the set comes out as
# its nearest neighbour in the set, which is still a language nobody asked for.
BROAD_LANGUAGES = (
    "en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "nb", "fi", "pl", "cs", "hu", "ro", "tr",
    "ru", "uk", "ar", "fa", "hi", "zh", "ja", "ko", "id", "vi",
    "el", "he", "th", "ka", "hy", "bn", "gu", "pa", "ta", "te",
)
# Below this many letters lingua's guess is noise ("Fix typo" is 60% French).
MIN_LETTERS = 10

# URLs and `inline code` say nothing about the language around them, and
# percent-encoded query strings pull English towards German or Indonesian.
_NOT_LANGUAGE = re.compile(r"https?://\S+|www\.\S+|`[^`\n]*`")

_detectors: dict[frozenset[str], LanguageDetector] = {}


def detect_languages(texts: list[str], languages: list[str] | None = None) -> list[tuple[str | None, float]]:
    """(ISO 639-1 code, confidence) of each text's most likely language; (None, 0.0) when it has
    fewer than MIN_LETTERS letters or no language could be told.

    `languages` are the ones the run keeps: added to the detector's set so each
    of them can be recognised, never the only choices.
    """
    detector = _detector(frozenset(BROAD_LANGUAGES) | frozenset(_code(c) for c in languages or ()))
    cleaned = [_NOT_LANGUAGE.sub(" ", t) for t in texts]
    todo = [i for i, t in enumerate(cleaned) if _has_letters(t, MIN_LETTERS)]
    out: list[tuple[str | None, float]] = [(None, 0.0)] * len(texts)
    # The parallel call spreads a batch over the cores in threads outside the GIL. On a
    # two-core machine busy with other work it measured the same as a plain loop (about
    # 1.1 MB/s of paragraphs), so it costs nothing where it does not help.
    values = detector.compute_language_confidence_values_in_parallel([cleaned[i] for i in todo]) if todo else []
    for i, ranked in zip(todo, values):
        if ranked and ranked[0].value > 0:
            # lingua adds its n-gram probabilities in an order that differs from process to process (measured:
            # 0.600830304847766 in one, ...657 in a pool worker), so a confidence is rounded far above that
            # noise: then a text is judged the same in this process, a pool or a Dask worker.
            out[i] = (ranked[0].language.iso_code_639_1.name.lower(), round(float(ranked[0].value), 9))
    return out


def _detector(codes: frozenset[str]) -> LanguageDetector:
    if codes not in _detectors:
        isos = [IsoCode639_1.from_str(c) for c in sorted(codes)]
        # Models load lazily, the first time a text needs them. Texts of 120 characters and
        # more use trigram models only (about 70 MB); the first shorter text loads the
        # 1- to 5-gram models of the candidate languages (about 3 s and 450 MB per process).
        # Low accuracy mode would skip those, but then called 5 of 60 short English sentences
        # German or Norwegian with confidence over 0.5, and short texts are most commit messages.
        _detectors[codes] = LanguageDetectorBuilder.from_iso_codes_639_1(*isos).build()
    return _detectors[codes]


def _code(code: str) -> str:
    try:
        IsoCode639_1.from_str(code)
    except ValueError:
        raise ValueError(f"language {code!r} is not an ISO 639-1 code lingua knows (e.g. en, de, fr)") from None
    return code.lower()


def _has_letters(text: str, n: int) -> bool:
    count = 0
    for ch in text:
        if ch.isalpha():
            count += 1
            if count >= n:
                return True
    return False
