from collections import Counter

import pytest

from knowtune.evaluate.general import (
    first_sentence, general_correct, general_messages, load_general_questions, normalise_tokens,
)

QUESTIONS = load_general_questions()
CATEGORIES = ("arithmetic", "everyday", "units", "code")
SUM = "What is 17 plus 25?"
FORTY_TWO = ["42", "forty-two", "forty two"]


def test_the_packaged_set_loads_whole():
    assert len(QUESTIONS) >= 120
    assert all(set(q) == {"id", "category", "question", "answers"} for q in QUESTIONS)
    ids = [q["id"] for q in QUESTIONS]
    assert len(set(ids)) == len(ids)
    assert len({q["question"] for q in QUESTIONS}) == len(QUESTIONS)


def test_every_category_is_large_enough():
    counts = Counter(q["category"] for q in QUESTIONS)
    assert set(counts) == set(CATEGORIES)
    assert all(counts[c] >= 25 for c in CATEGORIES), counts


def test_every_question_has_answers_that_normalise_to_something():
    for q in QUESTIONS:
        assert q["answers"], q["id"]
        assert all(normalise_tokens(a) for a in q["answers"]), q["id"]


def test_no_answer_is_contained_in_its_own_question():
    # The scoring rule depends on it: a reply restating the question must not score.
    for q in QUESTIONS:
        asked = normalise_tokens(q["question"])
        for answer in q["answers"]:
            target = normalise_tokens(answer)
            assert not any(asked[k : k + len(target)] == target for k in range(len(asked))), (q["id"], answer)


def test_numeric_answers_agree_with_each_other():
    # "42", "forty-two" and "forty two" are one answer: a typo in one form would make the set unfair.
    for q in QUESTIONS:
        forms = {tuple(normalise_tokens(a)) for a in q["answers"]}
        numeric = {f for f in forms if len(f) == 1 and f[0][0].isdigit()}
        assert len(numeric) <= 1, (q["id"], forms)


def test_every_question_is_answered_by_its_own_first_answer():
    for q in QUESTIONS:
        assert general_correct(q["answers"][0], q["answers"], q["question"]), q["id"]


@pytest.mark.parametrize("response", [
    "42", "42.", "The answer is 42.", "Forty-two!", "forty two", "17 + 25 = 42", "17 plus 25 equals 42.",
    "The sum of 17 and 25 is forty-two, which is an even number.",
    "42\nThis is because 17 + 25 makes 42.",
])
def test_right_answers_score(response):
    assert general_correct(response, FORTY_TWO, SUM)


@pytest.mark.parametrize("response", [
    "41", "17 + 25 = 41", "The answer is 41.", "17 plus 25", "25", "", "I am not sure.",
    # The answer only after the first sentence does not count: see the module's docstring.
    "Let me add them up.\n17 + 25 = 42",
    "Adding numbers is fun. The answer is 42.",
])
def test_wrong_answers_do_not_score(response):
    assert not general_correct(response, FORTY_TWO, SUM)


def test_the_questions_own_numbers_are_never_the_answer():
    # Without the question, "17" would count for a question whose answer is 17.
    assert general_correct("The answer is 17.", ["17"], "What is 9 plus 8?")
    assert not general_correct("9 + 8 = 16", ["17"], "What is 9 plus 8?")
    assert not general_correct("There are 3 metres.", ["300"], "How many centimetres are in 3 metres?")


def test_the_answer_is_the_first_or_last_number_left():
    question, answer = "How many centimetres are in 3 metres?", ["300", "three hundred"]
    assert general_correct("There are 300 centimetres in 3 metres.", answer, question)
    assert general_correct("1 metre is 100 centimetres, so 3 metres is 300 centimetres.", answer, question)
    assert general_correct("300 cm, since 1 metre is 100 cm.", answer, question)
    assert general_correct("Three hundred.", answer, question)
    assert not general_correct("1 metre is 100 centimetres, 300 millimetres is 30 centimetres and so on",
                               answer, question)


def test_number_forms_are_one_answer():
    assert general_correct("1,000 grams", ["1000", "one thousand"], "How many grams are in a kilogram?")
    assert general_correct("A thousand.", ["1000"], "How many grams are in a kilogram?")
    assert general_correct("It evaluates to 8.0", ["8"], "In Lua, what does `2 ^ 3` evaluate to?")
    assert general_correct("three hundred and sixty-five days", ["365"], "How many days are in a year?")
    assert not general_correct("1,2,3", ["123"], "Count to three.")


def test_text_answers_match_whole_words_in_the_first_sentence():
    paris = ["Paris"]
    question = "What is the capital of France?"
    assert general_correct("The capital of France is Paris.", paris, question)
    assert general_correct("PARIS!!!", paris, question)
    assert general_correct("paris", paris, question)
    assert general_correct("Paris, a city on the Seine, has been the capital since the Middle Ages.",
                           paris, question)
    assert not general_correct("Parisian cafes are famous.", paris, question)
    assert not general_correct("Lyon.", paris, question)
    assert not general_correct("France is a country in Europe.\nIts capital is Paris.", paris, question)


def test_code_answers_survive_their_punctuation():
    assert general_correct("Use `to_s`.", ["to_s"], "In Ruby, what method converts an integer to a string?")
    assert not general_correct("Use to_i.", ["to_s"], "In Ruby, what method converts an integer to a string?")
    assert general_correct("The `DISTINCT` keyword.", ["DISTINCT"], "What SQL keyword removes duplicates?")
    assert general_correct("ORDER BY column", ["ORDER BY"], "What SQL clause sorts rows?")
    assert general_correct("CO₂", ["CO2", "carbon dioxide"], "What gas do plants take in?")


def test_first_sentence_keeps_decimals_and_code():
    assert first_sentence("It is 3.5 metres. More text.") == "It is 3.5 metres."
    assert first_sentence("`[1, 2, 3].sum` returns 6. Also 7.") == "`[1, 2, 3].sum` returns 6."
    assert first_sentence("\n\n  Tokyo\nJapan") == "Tokyo"


def test_the_question_is_asked_with_the_instruction():
    (message,) = general_messages("What is 17 plus 25?")
    assert message["role"] == "user" and message["content"].startswith("What is 17 plus 25?")
    assert general_messages("Q?", instruction=None) == [{"role": "user", "content": "Q?"}]
