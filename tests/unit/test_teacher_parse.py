import email.utils
import time

import pytest

from knowtune.examples.teacher.client import retry_after
from knowtune.examples.teacher.judge import parse_verdict
from knowtune.examples.teacher.parse import NotJSON, load_json, parse_pairs
from knowtune.examples.teacher.prompts import default_prompt, render

PASSAGE = """def take(item, n):
    \"\"\"Take n of item from the store; taking more than is left is refused.\"\"\"
    if STORE[item] < n:
        raise ValueError("not enough")
"""
GOOD = ('[{"question": "What does take() in inventory.py do when asked for more than is left?", '
        '"answer": "It refuses: it raises ValueError.", "quote": "taking more than is left is refused"}]')


def reasons(dropped):
    return [d["reason"] for d in dropped]


def test_a_strict_json_reply_is_kept_as_is():
    kept, dropped = parse_pairs(GOOD, PASSAGE)
    assert dropped == []
    assert kept == [{"question": "What does take() in inventory.py do when asked for more than is left?",
                     "answer": "It refuses: it raises ValueError.", "quote": "taking more than is left is refused"}]


@pytest.mark.parametrize("reply", [
    f"```json\n{GOOD}\n```",
    f"```\n{GOOD}\n```\nLet me know if you need more questions!",
    f"Sure! Here are the pairs you asked for:\n\n{GOOD}\n\nI hope these help.",
    f'{{"pairs": {GOOD}}}',
    GOOD[1:-1],  # a single object, not in an array
    f"Here it is: {GOOD[1:-1]} -- done",
])
def test_well_known_repairs(reply):
    kept, dropped = parse_pairs(reply, PASSAGE)
    assert dropped == [] and len(kept) == 1


@pytest.mark.parametrize("reply", [
    "I cannot help with that.",
    '[{"question": "What does take() do?", "answer": "It',  # cut off mid-reply
    "[{'question': 'single quotes are not JSON'}]",
    '[{"question": "trailing comma", "answer": "a", "quote": "b",},]',
    "",
])
def test_replies_beyond_repair_are_dropped_whole(reply):
    kept, dropped = parse_pairs(reply, PASSAGE)
    assert kept == [] and reasons(dropped) == ["not JSON after repairs"]


def test_json_of_the_wrong_shape():
    assert reasons(parse_pairs('"just a string"', PASSAGE)[1]) == ["not a JSON array of pairs"]
    assert reasons(parse_pairs('{"a": 1, "b": 2}', PASSAGE)[1]) == ["not a JSON array of pairs"]
    assert reasons(parse_pairs("[]", PASSAGE)[1]) == ["no pairs in the reply"]
    assert reasons(parse_pairs('[1, "x"]', PASSAGE)[1]) == ["pair is not a JSON object"] * 2


def test_each_bad_pair_is_dropped_with_its_reason_and_the_good_ones_kept():
    reply = """[
      {"question": "What does take() in inventory.py raise when stock is short?", "answer": "ValueError.",
       "quote": "raise ValueError(\\"not enough\\")"},
      {"question": "What does take() return?", "answer": "The item."},
      {"question": "", "answer": "x", "quote": "taking more"},
      {"question": "Why does take() refuse?", "answer": "   ", "quote": "taking more"},
      {"question": "What does take() check?", "answer": 42, "quote": "taking more"},
      {"question": "What does the passage say about take()?", "answer": "It refuses.", "quote": "is refused"},
      {"question": "According to this code, what is STORE?", "answer": "A dict.", "quote": "STORE[item]"},
      {"question": "What is described in the given text?", "answer": "Taking.", "quote": "Take n of item"},
      {"question": "How does take() in inventory.py treat n?", "answer": "It subtracts it.",
       "quote": "STORE[item] -= n"},
      {"question": "What does take() in inventory.py raise when stock is short?", "answer": "An error.",
       "quote": "raise ValueError"}
    ]"""
    kept, dropped = parse_pairs(reply, PASSAGE)
    assert [k["question"] for k in kept] == ["What does take() in inventory.py raise when stock is short?"]
    assert reasons(dropped) == [
        "missing quote", "missing question", "missing answer", "missing answer",
        "question says 'the passage'", "question says 'this code'", "question says 'the given text'",
        "quote not in the chunk", "duplicate question",
    ]
    # the question travels with its reason when there is one
    assert dropped[0]["question"] == "What does take() return?" and "question" not in dropped[1]


def test_quotes_match_with_whitespace_normalised_but_case_kept():
    rewrapped = ('[{"question": "What does take() in inventory.py refuse?", "answer": "Taking too much.", '
                 '"quote": "Take n of item from the store;\\n   taking more than is left\\tis refused."}]')
    assert len(parse_pairs(rewrapped, PASSAGE)[0]) == 1
    recased = rewrapped.replace("Take n of item", "TAKE N OF ITEM")
    assert reasons(parse_pairs(recased, PASSAGE)[1]) == ["quote not in the chunk"]


def test_duplicates_ignore_case_spacing_and_the_question_mark():
    pair = '{{"question": "{}", "answer": "It refuses.", "quote": "is refused"}}'
    reply = "[" + ", ".join(pair.format(q) for q in [
        "What does take() in inventory.py refuse?", "what does  take() in inventory.py refuse", "Why does take() fail?"
    ]) + "]"
    kept, dropped = parse_pairs(reply, PASSAGE)
    assert [k["question"] for k in kept] == ["What does take() in inventory.py refuse?", "Why does take() fail?"]
    assert reasons(dropped) == ["duplicate question"]


def test_names_that_merely_contain_the_words_are_not_vague():
    reply = ('[{"question": "What does the text_splitter in chunking.py return?", "answer": "Pieces.", '
             '"quote": "Take n"}, {"question": "What does context document mean in the docs/faq.md page?", '
             '"answer": "x", "quote": "Take n"}]')
    assert len(parse_pairs(reply, PASSAGE)[0]) == 2


def test_load_json_prefers_the_reply_as_is():
    assert load_json(' {"a": [1, 2]} ') == {"a": [1, 2]}
    with pytest.raises(NotJSON):
        load_json("no json here")


@pytest.mark.parametrize("reply, verdict", [
    ('{"grounded": true, "useful": true, "reason": "stated in the file"}', (True, True, "stated in the file")),
    ('```json\n{"grounded": false, "useful": true, "reason": "adds a date"}\n```', (False, True, "adds a date")),
    ('Verdict: {"grounded": true, "useful": false}', (True, False, "")),
    ('[{"grounded": true, "useful": true, "reason": "ok"}]', (True, True, "ok")),
    ('{"grounded": "yes", "useful": true}', None),
    ('{"useful": true}', None),
    ("Looks grounded to me.", None),
])
def test_judge_verdicts(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_retry_after_in_seconds_or_as_an_http_date():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "0.5"}) == 0.5
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after({"retry-after": later}) <= 30
    earlier = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert retry_after({"retry-after": earlier}) == 0.0
    assert retry_after({"retry-after": "86400"}) == 120.0  # capped


def test_default_prompts_have_their_placeholders_and_render_leaves_other_braces():
    qa = default_prompt("qa")
    for placeholder in ("{pairs}", "{path}", "{about}", "{passage}"):
        assert placeholder in qa
    assert all(p in default_prompt("judge") for p in ("{question}", "{answer}", "{passage}"))
    out = render(qa, pairs=3, path="a.py", about="take()", passage='d = {"k": 1}  # {path} stays')
    assert 'd = {"k": 1}  # {path} stays' in out  # a passage is never substituted into
    assert '[{"question": "...", "answer": "...", "quote": "..."}]' in out
    assert "{pairs}" not in out and "Write 3 question" in out
    with pytest.raises(ValueError, match="no default prompt"):
        default_prompt("nope")
