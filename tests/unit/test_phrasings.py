"""Each fact in several wordings, from what the document says: no wording repeats, none invents a fact."""

from knowtune.examples.phrasings import phrasings
from knowtune.examples.qa import qa_examples
from knowtune.records import Chunk, Document

CODE = '''"""The ledger: readings in, daily segments out."""


def window(seconds: int = 8) -> int:
    """Readings are batched for this many seconds before they are written (8 since v0.2.0)."""
    return seconds
'''


def document():
    return Document(id="d1", source="repo:x", path="brindlemark/ledger.py", kind="code", text=CODE,
                    metadata={"programming_language": "python"})


def test_every_fact_gets_n_wordings_and_a_spare_with_its_own_answer():
    doc = document()
    chunk = Chunk(id="c1", document_id="d1", text=CODE, n_tokens=60, span=(0, len(CODE)))
    examples, _ = qa_examples(doc, [chunk], n=3)
    facts = {}
    for e in examples:
        facts.setdefault(e.metadata["fact"], []).append(e)
    assert len(facts) == 3  # the module's docstring, window's docstring, window's signature
    for wordings in facts.values():
        questions = [e.messages[0]["content"] for e in wordings]
        assert len(wordings) == 4 and len(set(questions)) == 4
        assert [e.metadata["phrasing"] for e in wordings] == [0, 1, 2, 3]
        assert wordings[-1].metadata.get("spare") and not any(e.metadata.get("spare") for e in wordings[:-1])
        # the spare is answered as the fact is first stated
        assert wordings[-1].messages[1]["content"] == wordings[0].messages[1]["content"]
    docstring = next(ws for ws in facts.values() if ws[0].metadata["about"] == "window"
                     and ws[0].metadata["rule"] == "docstring")
    for e in docstring:  # every answer states the docstring itself
        assert "batched for this many seconds before they are written (8 since v0.2.0)" in e.messages[1]["content"]


def test_a_change_is_one_fact_asked_about_each_of_its_files():
    from knowtune.examples.qa_pair import QAPair

    pair = QAPair('Why was a.py changed in "Raise the window"?', "Writes were too frequent.", "a.py",
                  "change_reason", None, {"files": ["a.py", "b.md"], "change": '"Raise the window"'})
    wordings = phrasings(pair, "sha", 3)
    assert [w.follows for w in wordings] == ["a.py", None, "b.md", None]  # file questions follow their files
    assert all(w.answer.endswith("Writes were too frequent.") for w in wordings)
