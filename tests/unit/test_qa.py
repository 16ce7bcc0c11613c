from pathlib import Path

import pytest

from knowtune.examples.qa import QAPair, extract_qa, qa_examples
from knowtune.records import Chunk, Document, stable_id

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tinyrepo"


def code(path: str, language: str, text: str | None = None) -> Document:
    text = (FIXTURE / path).read_text() if text is None else text
    return Document(id=f"doc:{path}", source="repo:t", path=path, kind="code", text=text,
                    metadata={"programming_language": language, "date": "2026-10-07"})


def page(path: str, title: str) -> Document:
    return Document(id=f"doc:{path}", source="repo:t", path=path, kind="doc", text=(FIXTURE / path).read_text(),
                    metadata={"title": title, "programming_language": None, "date": "2026-10-07"})


def qa(doc: Document) -> list[tuple[str, str]]:
    pairs, reason = extract_qa(doc)
    assert reason is None
    return [(p.question, p.answer) for p in pairs]


def by_question(doc: Document) -> dict[str, QAPair]:
    return {p.question: p for p in extract_qa(doc)[0]}


# --- Python --------------------------------------------------------------------


def test_python_module_function_docstrings_and_signature():
    assert qa(code("lanterna/pricing.py", "python")) == [
        ("What is lanterna/pricing.py for?", "Prices of an order from the harbour office, in crowns."),
        ("What does `price_order` in lanterna/pricing.py do?",
         "Total price of an order, with the wick discount and rounding to half crowns."),
        ("What arguments does `price_order` in lanterna/pricing.py take?",
         "`price_order` in lanterna/pricing.py takes (order: dict) and returns float."),
    ]


def test_python_classes_methods_async_keyword_only_and_skipped_helpers():
    p = "lanterna/keeper.py"
    assert qa(code(p, "python")) == [
        (f"What is {p} for?", "Keepers of the lighthouse and the watches they stand."),
        (f"What does `Keeper` in {p} do?", "A keeper who stands watches and signs the log."),
        # __init__ has no docstring but its signature is the class's; __repr__ and _tally are left out
        (f"What arguments does `Keeper.__init__` in {p} take?",
         f"`Keeper.__init__` in {p} takes (name: str, watches: int = 0) and returns None."),
        (f"What does `Keeper.stand_watch` in {p} do?",
         "Stand one night's watch and note it in the log.\n\n"
         "A storm watch counts twice, because the keeper stays up through it."),
        (f"What arguments does `Keeper.stand_watch` in {p} take?",
         f"`Keeper.stand_watch` in {p} takes (night: str, *, storm: bool = False, log: list[str] | None = None)"
         " and returns int."),
        (f"What does `Keeper.from_log` in {p} do?", "Read a keeper back from a line of the log."),
        (f"What arguments does `Keeper.from_log` in {p} take?",
         f'`Keeper.from_log` in {p} takes (line: str) and returns "Keeper".'),
        (f"What does `relieve` in {p} do?",
         "Hand the watch over to `successor` after a short wait; return the keeper now on watch."),
        (f"What arguments does `relieve` in {p} take?",
         f"`relieve` in {p} takes (keeper: Keeper, successor: Keeper, delay: float = 0.5) and returns Keeper."),
        (f"What arguments does `roster` in {p} take?",
         f"`roster` in {p} takes (*keepers: Keeper, sort=True, **notes: str)."),
    ]


def test_python_spans_point_at_the_docstring_and_the_def():
    doc = code("lanterna/keeper.py", "python")
    pairs = by_question(doc)
    doc_span = pairs["What does `Keeper.from_log` in lanterna/keeper.py do?"].span
    assert doc.text[doc_span[0]:doc_span[1]] == '"""Read a keeper back from a line of the log."""'
    sig_span = pairs["What arguments does `relieve` in lanterna/keeper.py take?"].span
    assert doc.text[sig_span[0]:sig_span[1]].startswith("async def relieve(keeper: Keeper,")


def test_python_spans_count_characters_not_bytes():
    text = '"""Lümen."""\n\n\ndef glow(colour="weiß"):\n    """Glüht."""\n'
    pairs = extract_qa(code("lanterna/glow.py", "python", text))[0]
    start, end = pairs[1].span
    assert text[start:end] == '"""Glüht."""'
    assert pairs[2].answer == '`glow` in lanterna/glow.py takes (colour="weiß").'


def test_python_that_does_not_parse_is_skipped_with_its_reason():
    assert extract_qa(code("lanterna/broken.py", "python", "def take(store, name:\n")) == (
        [], "python file does not parse")


# --- tree-sitter languages --------------------------------------------------------


def test_javascript_jsdoc_arrow_functions_classes_and_an_undocumented_function():
    p = "clients/web/lamp.js"
    pairs = qa(code(p, "javascript"))
    assert pairs == [
        (f"What does `countOf` in {p} do?",
         'Fetch how many of an item are left in the store.\n@param {string} name - the item, e.g. "wick"\n'
         "@returns {Promise<number>} the count left"),
        (f"What arguments does `countOf` in {p} take?", f"`countOf` in {p} takes (name)."),
        (f"What does `formatCrowns` in {p} do?",
         "Format a price in crowns, rounded up to the half crown as the store does."),
        (f"What arguments does `formatCrowns` in {p} take?", f'`formatCrowns` in {p} takes (amount, symbol = "cr").'),
        (f"What does `LampWidget` in {p} do?",
         "The lamp drawn on the keeper's page: lit while there is oil for the night."),
        (f"What does `LampWidget.constructor` in {p} do?",
         "Draw a lamp inside `element`.\n@param {HTMLElement} element - where the lamp goes"),
        (f"What arguments does `LampWidget.constructor` in {p} take?",
         f"`LampWidget.constructor` in {p} takes (element)."),
        (f"What does `LampWidget.light` in {p} do?",
         "Light the lamp when the store holds oil for one night; returns whether it is lit.\n"
         "@param {number} oilLitres - oil left in the store"),
        (f"What arguments does `LampWidget.light` in {p} take?", f"`LampWidget.light` in {p} takes (oilLitres)."),
        (f"What arguments does `LampWidget.render` in {p} take?", f"`LampWidget.render` in {p} takes no arguments."),
        (f"What arguments does `showError` in {p} take?", f"`showError` in {p} takes (err)."),
    ]


def test_typescript_interfaces_types_return_types_and_parameter_properties():
    p = "clients/web/api.ts"
    pairs = qa(code(p, "typescript"))
    assert pairs == [
        (f"What does `OrderLine` in {p} do?", "One line of an order from the harbour office."),
        (f"What does `ItemName` in {p} do?", "The items the store keeps."),
        (f"What does `placeOrder` in {p} do?",
         "Place an order and return its price in crowns.\n@param lines - what the harbour office asks for\n"
         "@param rush - deliver before the next supply boat"),
        (f"What arguments does `placeOrder` in {p} take?",
         f"`placeOrder` in {p} takes (lines: OrderLine[], rush = false) and returns Promise<number>."),
        (f"What arguments does `StoreClient.constructor` in {p} take?",
         f"`StoreClient.constructor` in {p} takes (private readonly baseUrl: string)."),
        (f"What does `StoreClient.reorderList` in {p} do?",
         "Items whose count fell below their minimum, slowest supplier first."),
        (f"What arguments does `StoreClient.reorderList` in {p} take?",
         f"`StoreClient.reorderList` in {p} takes (minimum: Record<ItemName, number>)"
         " and returns Promise<ItemName[]>."),
        (f"What does `oilForNight` in {p} do?",
         "Litres of oil one night needs; a storm night needs half as much again."),
        (f"What arguments does `oilForNight` in {p} take?",
         f"`oilForNight` in {p} takes (storm: boolean) and returns number."),
    ]


def test_go_doc_comments_receivers_and_unexported_helpers():
    p = "clients/go/lamp.go"
    assert qa(code(p, "go")) == [
        (f"What is {p} for?", "Package lamp connects the lamp room's controller to the lanterna store."),
        (f"What does `Lamp` in {p} do?",
         "Lamp is the great lamp at the top of the tower.\nIt burns oil from the store from dusk to dawn."),
        (f"What does `Lamp.Light` in {p} do?",
         "Light lights the lamp when the store holds oil for the night.\n"
         "It returns an error when the oil is below the reserve."),
        (f"What arguments does `Lamp.Light` in {p} take?",
         f"`Lamp.Light` in {p} takes (storm bool) and returns error."),
        (f"What does `OilForNight` in {p} do?",
         "OilForNight returns the litres one night needs; a storm night needs half as much again."),
        (f"What arguments does `OilForNight` in {p} take?",
         f"`OilForNight` in {p} takes (storm bool) and returns float64."),
        (f"What arguments does `NightsLeft` in {p} take?",
         f"`NightsLeft` in {p} takes (oil float64, storms, nights int) and returns int."),
        (f"What does `Store` in {p} do?", "Store is what the lamp needs from the store room."),
    ]  # clamp: unexported and undocumented


def test_java_javadoc_constructors_and_private_methods():
    p = "clients/java/Lamp.java"
    assert qa(code(p, "java")) == [
        (f"What does `Lamp` in {p} do?",
         "The great lamp, as the harbour office's tools see it.\nOil is counted in litres, as in the store."),
        (f"What does `Lamp.Lamp` in {p} do?",
         "Make a lamp with some oil in its tank.\n@param oilLitres litres of oil, never negative"),
        (f"What arguments does `Lamp.Lamp` in {p} take?", f"`Lamp.Lamp` in {p} takes (double oilLitres)."),
        (f"What does `Lamp.burnNight` in {p} do?",
         "Burn one night's oil.\n\n@param storm whether the night is a storm night\n"
         "@return the litres left after the night\n"
         "@throws IllegalStateException when the tank cannot last the night"),
        (f"What arguments does `Lamp.burnNight` in {p} take?",
         f"`Lamp.burnNight` in {p} takes (boolean storm) and returns double."),
        (f"What arguments does `Lamp.isLit` in {p} take?",
         f"`Lamp.isLit` in {p} takes no arguments and returns boolean."),
        (f"What does `Lamp.reorderLines` in {p} do?",
         "The items to reorder, one line each, for the harbour office's list."),
        (f"What arguments does `Lamp.reorderLines` in {p} take?",
         f"`Lamp.reorderLines` in {p} takes (Map<String, Integer> store, int minimum) and returns List<String>."),
    ]  # need(): private and undocumented


@pytest.mark.parametrize("path,language", [
    ("clients/web/lamp.js", "javascript"), ("clients/web/api.ts", "typescript"),
    ("clients/go/lamp.go", "go"), ("clients/java/Lamp.java", "java"),
])
def test_doc_comment_spans_cover_the_comment(path, language):
    doc = code(path, language)
    for p in extract_qa(doc)[0]:
        quoted = doc.text[p.span[0]:p.span[1]]
        if p.rule == "docstring":
            assert quoted.startswith(("/**", "//")) and p.answer.splitlines()[0] in quoted
        else:
            assert p.about.split(".")[-1] in quoted


def test_a_comment_separated_by_a_blank_line_or_not_a_doc_block_is_not_documentation():
    text = "/** File header. */\n\nexport function a(x) {}\n// just a note\nfunction b() {}\n"
    assert qa(code("web/x.js", "javascript", text)) == [
        ("What arguments does `a` in web/x.js take?", "`a` in web/x.js takes (x)."),
        ("What arguments does `b` in web/x.js take?", "`b` in web/x.js takes no arguments."),
    ]


def test_an_unsupported_language_is_skipped_with_its_reason():
    assert extract_qa(code("clients/rust/lamp.rs", "rust")) == ([], "no QA extractor for rust")


# --- pages ---------------------------------------------------------------------------


def test_faq_headings_are_the_questions():
    assert qa(page("docs/faq.md", "Questions keepers ask")) == [
        ("Why does the report warn about oil?",
         "The reserve is twelve litres: enough for four storm nights. When the store\n"
         "holds less, the report prints a warning so the keeper orders more in time."),
        ("Can I take more wicks than the store holds?",
         "No. Lanterna refuses to take more of an item than is left, and says how many\nthere are."),
        ("Where is the store kept?", "In store.json next to the program, or wherever LANTERNA_STORE points."),
    ]  # the title heading has no paragraph of its own: no pair


def test_readme_headings_name_the_page():
    pairs = qa(page("README.md", "Lanterna"))
    assert [q for q, _ in pairs] == [
        "What is Lanterna about?", "What does Lanterna say about Installing?", "What does Lanterna say about Using it?",
    ]
    assert pairs[1][1] == (
        "Run `pip install -e .` in a fresh virtual environment. Lanterna needs Python 3.11\n"
        "and nothing else: the store is a single JSON file next to the program."
    )


def test_headings_in_code_fences_and_sections_without_a_paragraph():
    text = ("# Lamp room\n\n```bash\n# not a heading\nmake\n```\n\nThe lamp room is at the top.\n\n"
            "## Empty\n\n## Steps\n- trim\n- light\n")
    doc = Document(id="d", source="repo:t", path="docs/lamp.md", kind="doc", text=text, metadata={"title": "Lamp room"})
    assert qa(doc) == [
        ("What is Lamp room about?", "The lamp room is at the top."),
        ("What does Lamp room say about Steps?", "- trim\n- light"),
    ]
    for p in extract_qa(doc)[0]:
        assert text[p.span[0]:p.span[1]] == p.answer


# --- changes ----------------------------------------------------------------------------

COMMIT = (
    "commit 3f2a9c1b7d4e\nDate: 2026-10-02\n\nPrice orders for the harbour office\n\n"
    "Wicks over fifty get ten percent off; totals round up to half crowns.\n\n"
    "Files changed:\n  docs/pricing.md (+12 -0)\n  lanterna/pricing.py (+17 -0)\n\n"
    "Diff:\ndiff --git a/lanterna/pricing.py b/lanterna/pricing.py\n+WICK_DISCOUNT_OVER = 50\n"
)


def change(path: str, text: str, title: str, files: list[str]) -> Document:
    return Document(id=f"doc:{path}", source="git:t", path=path, kind="change", text=text,
                    metadata={"commit": path, "title": title, "files": files, "date": "2026-10-02T12:00:00+00:00"})


def test_a_commit_body_answers_why_each_file_changed():
    files = ["docs/pricing.md", "lanterna/pricing.py"]
    doc = change("3f2a9c1b7d4e", COMMIT, "Price orders for the harbour office", files)
    body = "Wicks over fifty get ten percent off; totals round up to half crowns."
    # one fact, the commit's reason; each changed file asks it once more, and the question follows its file
    pairs = extract_qa(doc)[0]
    assert [(p.question, p.answer, p.about) for p in pairs] == [
        ('Why was docs/pricing.md changed in "Price orders for the harbour office"?', body, "docs/pricing.md")]
    assert COMMIT[pairs[0].span[0]:pairs[0].span[1]] == body
    examples, _ = qa_examples(doc, [], n=3)
    per_file = {e.messages[0]["content"]: e.metadata.get("follows") for e in examples
                if e.messages[0]["content"].startswith("Why was docs") or e.messages[0]["content"].startswith("Why was lanterna")}
    assert per_file == {
        'Why was docs/pricing.md changed in "Price orders for the harbour office"?': "docs/pricing.md",
        'Why was lanterna/pricing.py changed in "Price orders for the harbour office"?': "lanterna/pricing.py"}
    assert {e.metadata["fact"] for e in examples} == {examples[0].metadata["fact"]}


def test_a_commit_without_a_body_has_no_pairs():
    text = ("commit 9b1c2d3e4f5a\nDate: 2026-10-04\n\nAdd the command line and the deployment notes\n\n"
            "Files changed:\n  lanterna/cli.py (+25 -0)\n\nDiff:\n+import sys\n")
    doc = change("9b1c", text, "Add the command line and the deployment notes", ["lanterna/cli.py"])
    assert extract_qa(doc) == ([], None)


def test_a_commit_touching_many_files_asks_about_five():
    files = [f"lanterna/f{i}.py" for i in range(8)]
    text = "commit 1\nDate: 2026-10-04\n\nRename\n\nNames follow the store.\n\nFiles changed:\n" + "".join(
        f"  {f} (+1 -1)\n" for f in files)
    doc = change("1", text, "Rename", files)
    assert extract_qa(doc)[0][0].fields["files"] == files[:5]
    asked = {e.metadata.get("follows") for e in qa_examples(doc, [], n=20)[0]} - {None}
    assert asked == set(files[:5])


def test_a_pull_request_description_answers_why():
    text = (
        "PR #42: Keep thirty nightly reports\nState: merged (opened 2026-10-06, merged 2026-10-07)\n"
        "URL: https://git.lighthouse.example/lanterna/pull/42\n\n"
        "The archive grew without limit; keep the newest thirty and delete the rest.\n\n"
        "Comments:\n- brann: thirty matches the deploy notes\n\n"
        "Files changed:\n  lanterna/archive.py (modified, +9 -2)\n  CHANGELOG.md (modified, +1 -0)\n"
    )
    doc = change("pr/42", text, "Keep thirty nightly reports", ["lanterna/archive.py", "CHANGELOG.md"])
    assert qa(doc) == [
        ('Why was lanterna/archive.py changed in pull request #42 ("Keep thirty nightly reports")?',
         "The archive grew without limit; keep the newest thirty and delete the rest."),
    ]
    questions = [e.messages[0]["content"] for e in qa_examples(doc, [], n=3)[0]]
    assert 'Why was CHANGELOG.md changed in pull request #42 ("Keep thirty nightly reports")?' in questions
    no_description = "PR #43: Bump\nState: open\n\n(no description)\n\nFiles changed:\n  a.py (modified, +1 -1)\n"
    assert qa(change("pr/43", no_description, "Bump", ["a.py"])) == []


# --- examples ------------------------------------------------------------------------------


def test_examples_carry_messages_ids_metadata_and_the_chunk_holding_the_answer():
    doc = code("lanterna/pricing.py", "python")
    cut = doc.text.index("def price_order")
    chunks = [
        Chunk(id="c0", document_id=doc.id, text=doc.text[:cut], n_tokens=40, span=(0, cut)),
        Chunk(id="c1", document_id=doc.id, text=doc.text[cut:], n_tokens=60, span=(cut, len(doc.text))),
    ]
    examples, reason = qa_examples(doc, chunks)
    # three facts, each in one wording to train and a spare one the curate stage may hold out
    assert reason is None and len(examples) == 6
    assert [e.metadata.get("spare", False) for e in examples] == [False, True] * 3
    module, docstring, signature = examples[::2]
    assert docstring.metadata["fact"] == examples[3].metadata["fact"] != module.metadata["fact"]
    assert module.provenance == ["c0"] and docstring.provenance == ["c1"] and signature.provenance == ["c1"]
    assert docstring.kind == "qa" and docstring.document_id == doc.id
    question = "What does `price_order` in lanterna/pricing.py do?"
    assert docstring.id == stable_id("qa", doc.id, "docstring", question)
    assert docstring.messages == [
        {"role": "user", "content": question},
        {"role": "assistant",
         "content": "Total price of an order, with the wick discount and rounding to half crowns."},
    ]
    assert docstring.metadata == {
        "source": "repo:t", "path": "lanterna/pricing.py", "rule": "docstring", "about": "price_order",
        "fact": stable_id("fact", doc.id, "docstring", "price_order"), "phrasing": 0}


def test_an_answer_spanning_two_chunks_comes_from_both_and_skips_pass_their_reason():
    doc = change("3f2a9c1b7d4e", COMMIT, "Price orders for the harbour office", ["lanterna/pricing.py"])
    cut = COMMIT.index("ten percent")
    chunks = [Chunk(id="a", document_id=doc.id, text=COMMIT[:cut], n_tokens=30, span=(0, cut)),
              Chunk(id="b", document_id=doc.id, text=COMMIT[cut:], n_tokens=50, span=(cut, len(COMMIT)))]
    examples, _ = qa_examples(doc, chunks)
    assert examples[0].provenance == ["a", "b"]
    rust = code("clients/rust/lamp.rs", "rust")
    assert qa_examples(rust, []) == ([], "no QA extractor for rust")


def test_questions_always_name_what_they_are_about():
    docs = [code(p, lang) for p, lang in [
        ("lanterna/keeper.py", "python"), ("clients/web/lamp.js", "javascript"), ("clients/web/api.ts", "typescript"),
        ("clients/go/lamp.go", "go"), ("clients/java/Lamp.java", "java"),
    ]]
    for doc in docs:
        for p in extract_qa(doc)[0]:
            assert doc.path in p.question and "this function" not in p.question
