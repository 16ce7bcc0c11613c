import re
from pathlib import Path

import pytest
from conftest import FIXTURE, HISTORY

from knowtune.config import GopherConfig, QualityConfig
from knowtune.curate.language import detect_languages
from knowtune.curate.quality import gopher_reason, prose_of, quality_filter
from knowtune.records import Example

README = Path(__file__).parents[2] / "README.md"
GOPHER = GopherConfig()

ENGLISH = ("The lighthouse store keeps the lamps, wicks and oil for the keeper. Every night the report lists "
           "what is left, and it warns when the oil falls below the reserve of twelve litres.")
GERMAN = ("Das Lager des Leuchtturms verwahrt Lampen, Dochte und Öl für den Wärter. Jeden Abend zeigt der "
          "Bericht, was noch da ist, und warnt, wenn das Öl unter die Reserve von zwölf Litern fällt.")
FRENCH = ("Le magasin du phare garde les lampes, les mèches et l'huile du gardien. Chaque soir, le rapport "
          "indique ce qui reste et avertit quand l'huile descend sous la réserve de douze litres.")
SPANISH = ("El almacén del faro guarda las lámparas, las mechas y el aceite del farero. Cada noche el informe "
           "muestra lo que queda y avisa cuando el aceite baja de la reserva de doce litros.")
IDENTIFIERS = ("Call `add_item(store, name, count)` to put wicks into the store; it returns the new total. "
               "take_item refuses to go below zero and raises ValueError saying how many are left, and "
               "LANTERNA_STORE points at store.json when the file lives somewhere else.")
GERMAN_CODE = '''def dochte_hinzufuegen(lager: dict, anzahl: int) -> int:
    """Fügt dem Lager Dochte hinzu und gibt den neuen Bestand zurück."""
    if anzahl <= 0:
        raise ValueError("Die Anzahl muss größer als null sein, sonst bleibt das Lager unverändert")
    lager["dochte"] = lager.get("dochte", 0) + anzahl
    return lager["dochte"]
'''
SYMBOL_CODE = """# ----------------------------------------------------------------
# ## lamp room wiring ## ...
# ----------------------------------------------------------------
}
}
}
#define LAMP_ON  0x01
#define LAMP_OFF 0x00
}
}
"""


def raw(text, doc_kind, **meta):
    return Example(id=f"r{abs(hash(text)) % 10**8}", kind="raw", document_id="d", text=text,
                   metadata={"doc_kind": doc_kind, **meta})


def chat(answer, doc_kind=None, kind="qa", question="What is it?", **meta):
    meta = {"doc_kind": doc_kind, **meta} if doc_kind else meta
    return Example(id=f"c{abs(hash(answer)) % 10**8}", kind=kind, document_id="d", metadata=meta,
                   messages=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}])


# --- language identification -------------------------------------------------


def test_languages_detected_with_high_confidence():
    found = detect_languages([ENGLISH, GERMAN, FRENCH, SPANISH, IDENTIFIERS])
    assert [code for code, _ in found] == ["en", "de", "fr", "es", "en"]
    assert all(confidence > 0.9 for _, confidence in found), found


def test_wanted_languages_are_added_not_the_only_choices():
    # Built from [en] alone, the detector would have to call German English.
    assert detect_languages([GERMAN], ["en"])[0][0] == "de"
    # A language outside the broad set is recognised once it is wanted.
    assert detect_languages(["Lampa latarni morskiej świeci każdej nocy nad zatoką."], ["pl"])[0][0] == "pl"
    with pytest.raises(ValueError, match="'xx' is not an ISO 639-1 code"):
        detect_languages([ENGLISH], ["xx"])


def test_too_short_or_no_letters_is_unknown():
    assert detect_languages(["", "Fix it", "1234 5678 -- ++", "https://example.com/a/b/c/d"]) == [(None, 0.0)] * 4


def test_language_id_in_a_process_pool_worker_finds_what_it_finds_here():
    import multiprocessing

    texts = [ENGLISH, GERMAN, "Fix the wick count when the store is empty", ""]
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # what the curate stage's pool does
        assert pool.apply(detect_languages, (texts, ["en", "de"])) == detect_languages(texts, ["en", "de"])


def test_only_english_drops_german_prose_but_keeps_german_named_code():
    examples = [
        raw(f"File: docs/lager.md\n\n# Lager\n\n{GERMAN}", "doc"),
        raw(f"File: docs/store.md\n\n# Store\n\n{ENGLISH}", "doc"),
        raw(f"File: lanterna/lager.py\n\n{GERMAN_CODE}", "code"),
        chat(f"As of 2026-10, lanterna/lager.py looks like:\n\n```python\n{GERMAN_CODE}```", "code",
             kind="instruction"),
        chat("def dochte_hinzufuegen(lager: dict, anzahl: int) -> int", "code", rule="signature"),
    ]
    cfg = QualityConfig(languages=["en"])
    result = quality_filter(examples, cfg, detect_languages([prose_of(e) or "" for e in examples], cfg.languages))
    assert [e.id for e in result.kept] == [e.id for e in examples[1:]]
    [dropped] = result.dropped
    assert dropped.step == "quality" and dropped.record["id"] == examples[0].id
    assert re.fullmatch(r"language de \((0\.9\d|1\.00)\), not one of en", dropped.reason), dropped.reason


def test_language_needs_confidence_and_a_wanted_list():
    e = raw(f"File: docs/lager.md\n\n{GERMAN}", "doc")
    assert quality_filter([e], QualityConfig(languages=["en"]), [("de", 0.3)]).kept == [e]
    assert quality_filter([e], QualityConfig(), [("de", 0.99)]).kept == [e]
    assert quality_filter([e], QualityConfig(languages=["en", "de"]), [("de", 0.99)]).kept == [e]
    with pytest.raises(ValueError, match="1 language results for 2 examples"):
        quality_filter([e, e], QualityConfig(), [("de", 0.99)])


# --- Gopher rules ------------------------------------------------------------

CRAFTED = {
    "Lamps lit.": r"word count 2 < 3",
    "Internationalisation notwithstanding, characteristically incomprehensible responsibilities "
    "overwhelm administrators.": r"mean word length 1\d\.\d > 10\.0",
    "I am on it, as is he, so we go up by it.": r"mean word length 1\.9 < 3\.0",
    "#lighthouse #oil #wicks #storm #keeper tonight at the harbour": r"symbol ratio 0\.56 > 0\.1 \('#' per word\)",
    "The oil... the wicks... the lamps... and then the storm came over the harbour": (
        r"symbol ratio 0\.21 > 0\.1 \('\.\.\.' per word\)"),
    "- oil for the lamps\n- wicks from the weavers\n• glass mantles\n* brass polish": r"bullet lines 1\.00 > 0\.9",
    "The keeper climbed the stairs to the lamp room and looked out over the grey water…\n"
    "Nothing moved on the harbour wall, and the gulls had gone quiet for the night…\n"
    "Then the bell rang twice.": r"ellipsis lines 0\.67 > 0\.3",
    "Totals for the week: 1250 4075 3310 2024 1875 3390 9120 crowns": r"words with letters 0\.42 < 0\.8",
    "Check the oil.\nCheck the oil.\nCheck the oil.\nLight the lamp at nine.": r"duplicate lines 0\.50 > 0\.3",
    " ".join(["oil lamps"] * 20) + " and then a few more words about the keeper and his long night in the "
    "store room while the storm blew outside": r"top bigram share 0\.\d\d > 0\.2 \('oil lamps'\)",
}


@pytest.mark.parametrize("text,reason", CRAFTED.items(), ids=[r.split(" ")[0] for r in CRAFTED.values()])
def test_each_gopher_rule_names_itself_and_its_numbers(text, reason):
    cfg = GopherConfig(max_bullet_lines=0.9)  # the paper's limit; knowtune's default turns this rule off
    assert re.fullmatch(reason, gopher_reason(text, cfg) or ""), gopher_reason(text, cfg)


def test_normal_prose_passes_every_rule():
    commits = [message for _, message in HISTORY] + [
        "Fix the report crash on an empty store (#42)\n\nFixes #41. The report divided by the number of "
        "items, which is zero for a new store; it now prints 'empty' instead.\n\nCo-authored-by: keeper",
    ]
    changelog = (FIXTURE / "CHANGELOG.md").read_text()
    docs = [p.read_text() for p in sorted((FIXTURE / "docs").glob("*.md"))]
    for text in [ENGLISH, GERMAN, FRENCH, SPANISH, IDENTIFIERS, changelog, *docs, *commits]:
        assert gopher_reason(text, GOPHER) is None, text


def test_this_repositorys_readme_passes_as_raw_chunks():
    text = README.read_text()
    sections = re.split(r"\n(?=## )", text)
    assert len(sections) > 5
    for section in [text, *sections]:
        prose = prose_of(raw(f"File: README.md\n\n{section}", "doc"))
        assert prose and gopher_reason(prose, GOPHER) is None, section[:60]


def test_one_occurrence_is_not_a_pattern_in_a_short_answer():
    for answer in ["The lighthouse store keeps the oil. The lighthouse store also keeps the wicks.",
                   "It costs 3.25 crowns.", "Fixed in #12 by the keeper (see #notes).", "Then the storm came...",
                   "- The archive keeps thirty nightly reports."]:
        assert gopher_reason(answer, GOPHER) is None, answer


def test_code_passes_because_it_is_code():
    assert gopher_reason(SYMBOL_CODE, GOPHER) is not None  # as prose it would fail
    code = raw(f"File: firmware/lamp.h\n\n{SYMBOL_CODE}", "code")
    assert prose_of(code) is None
    result = quality_filter([code], QualityConfig(languages=["en"]), [(None, 0.0)])
    assert result.kept == [code] and result.dropped == []


def test_gopher_can_be_switched_off():
    e = raw("File: docs/x.md\n\nCheck the oil.\nCheck the oil.\nCheck the oil.", "doc")
    assert quality_filter([e], QualityConfig(), [("en", 0.9)]).dropped[0].reason == "duplicate lines 0.67 > 0.3"
    assert quality_filter([e], QualityConfig(gopher={"enabled": False}), [("en", 0.9)]).kept == [e]


# --- what counts as prose ------------------------------------------------------

COMMIT = ("commit 3f2a1b9c8d7e\nDate: 2026-10-01\n\nKeep thirty nightly reports\n\nOlder reports fill the disk "
          "of the keeper's machine.\n\nFiles changed:\n  lanterna/archive.py (+30 -0)\n\nDiff:\n"
          "diff --git a/lanterna/archive.py b/lanterna/archive.py\n+KEEP = 30\n")
PULL = ("PR #7: Round totals up\nState: merged (opened 2026-10-02, merged 2026-10-03)\n\nTotals now round up "
        "to the half crown, as the harbour office asked.\n\nComments:\n- keeper-1: Thanks, that matches the "
        "ledger.\n\nFiles changed:\n  lanterna/pricing.py (+2 -1)\n")


def test_prose_of_raw_examples():
    page = raw("File: docs/deploy.md\n\n# Deploying\n\nRun it nightly from cron.\n\n```sh\n"
               "# every night\n0 21 * * * lanterna report\n```\n\nThat is all.", "doc")
    assert prose_of(page) == "# Deploying\n\nRun it nightly from cron.\n\n\nThat is all."
    first = raw(f"Commit 3f2a1b9c8d7e: Keep thirty nightly reports\n\n{COMMIT}", "change")
    assert prose_of(first) == "Keep thirty nightly reports\n\nOlder reports fill the disk of the keeper's machine."
    later = raw("Commit 3f2a1b9c8d7e: Keep thirty nightly reports\n\nDiff:\ndiff --git a/x b/x\n+KEEP = 30", "change")
    assert prose_of(later) is None
    pull = raw(f"Pull request #7: Round totals up\n\n{PULL}", "change")
    assert prose_of(pull) == ("Totals now round up to the half crown, as the harbour office asked.\n\nComments:\n"
                              "- keeper-1: Thanks, that matches the ledger.")
    assert prose_of(raw(f"File: lanterna/lager.py\n\n{GERMAN_CODE}", "code")) is None
    assert prose_of(raw(ENGLISH, None)) is None  # kind unknown: judged as nothing rather than wrongly


def test_prose_of_instructions_and_answers():
    template = chat(f"As of 2026-10, lanterna/lager.py looks like:\n\n```python\n{GERMAN_CODE}```", "code",
                    kind="instruction")
    assert prose_of(template) is None
    assert prose_of(chat("Add `count` of `name` to the store and return the total.", "code", rule="docstring"))
    assert prose_of(chat("def add_item(store: dict, name: str, count: int) -> int", "code", rule="signature")) is None
    teacher = chat("Call it like this:\n```python\nadd_item(store, 'wick', 40)\n```\nIt returns the new total.",
                   "code", rule="teacher")
    assert prose_of(teacher) == "Call it like this:\nIt returns the new total."
    assert prose_of(chat("Like this:\n```python\nadd_item(store, 'wick', 40)\n```", "code", rule="teacher")) is None
    page = chat("The reserve is twelve litres: enough for four storm nights.", "doc", kind="instruction")
    assert prose_of(page) == "The reserve is twelve litres: enough for four storm nights."
    change = chat(COMMIT.split("\nDiff:")[0], "change", kind="instruction")
    assert prose_of(change) == "Keep thirty nightly reports\n\nOlder reports fill the disk of the keeper's machine."
    reason = chat("Older reports fill the disk of the keeper's machine.", "change", rule="change_reason")
    assert prose_of(reason) == "Older reports fill the disk of the keeper's machine."
    preference = Example(id="p", kind="preference", document_id="d", metadata={"doc_kind": "doc"},
                         prompt=[{"role": "user", "content": "Why?"}],
                         chosen=[{"role": "assistant", "content": "Because the storm nights burn more oil."}],
                         rejected=[{"role": "assistant", "content": "Because wicks are cheap this season."}])
    assert prose_of(preference) == "Because the storm nights burn more oil."


def test_prose_of_external_chat_joins_the_assistant_replies():
    e = Example(id="x", kind="instruction", document_id="", metadata={"origin": "external", "source": "jsonl:x"},
                messages=[{"role": "system", "content": "Be brief and kind."},
                          {"role": "user", "content": "Wie spät ist es jetzt gerade?"},
                          {"role": "assistant", "content": "It is nine in the evening."},
                          {"role": "user", "content": "Und morgen?"},
                          {"role": "assistant", "content": "Tomorrow the lamp is lit at nine again."}])
    assert prose_of(e) == "It is nine in the evening.\n\nTomorrow the lamp is lit at nine again."
