"""Replies cut at stop strings as they stream: what a client receives is never taken back."""

from knowtune.serve.text import TextStream


def stream(tokenizer, text, stop):
    """The pieces a client receives for `text` generated token by token, and whether it stopped."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    out = TextStream(tokenizer, stop)
    pieces = []
    for token in ids:
        pieces.append(out.push(token))
        if out.stopped:
            break
    pieces.append(out.flush())
    return [p for p in pieces if p], out.stopped, ids


def test_a_stop_string_split_over_tokens_ends_the_text_before_it(llama3_tokenizer):
    text = "The lamp burns red.</answer> and then more"
    pieces, stopped, ids = stream(llama3_tokenizer, text, ["</answer>"])
    assert stopped and "".join(pieces) == "The lamp burns red."
    assert len(ids) > len("</answer>") // 3  # the stop string really spans several tokens


def test_text_that_might_start_a_stop_string_is_held_back_until_it_does_not(llama3_tokenizer):
    tokenizer = llama3_tokenizer
    out = TextStream(tokenizer, ["STOP here"])
    received, seen = "", []
    for token in tokenizer("Lamp STOP there, STOP here", add_special_tokens=False)["input_ids"]:
        received += out.push(token)
        seen.append(received)
        assert "Lamp STOP there, ".startswith(received)  # never a piece of the real stop string
        if out.stopped:
            break
    assert out.stopped and received == "Lamp STOP there, "
    assert any(r.startswith("Lamp STOP t") for r in seen[:-1])  # the false start was released once it was one


def test_without_a_stop_string_everything_arrives(llama3_tokenizer):
    text = "Lamp 7 of the harbour burns amber, à côté du phare 🌊."
    pieces, stopped, _ = stream(llama3_tokenizer, text, ["</s>"])
    assert not stopped and "".join(pieces) == text
    # a character made of several byte tokens is sent whole, never as a replacement character
    assert not any("\ufffd" in p for p in pieces)


def test_held_back_text_is_sent_at_the_end_when_no_stop_follows(llama3_tokenizer):
    pieces, stopped, _ = stream(llama3_tokenizer, "It ends with </ans", ["</answer>"])
    assert not stopped and "".join(pieces) == "It ends with </ans"
