import pytest

from knowtune.examples.chunking import chunk_text
from conftest import FIXTURE

CODE = "\n\n".join(
    f'def function_{i}(x):\n    """Doubles x, the {i}th way."""\n    y = x * 2\n    return y + {i}\n' for i in range(30)
)


def pieces(tokenizer, text, max_tokens, kind, overlap=0):
    enc = tokenizer(text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True)
    return chunk_text(text, enc["offset_mapping"], max_tokens, kind, overlap), enc


@pytest.mark.parametrize("max_tokens", [20, 57, 128, 400])
def test_chunks_cover_the_document_exactly_and_respect_the_limit(tiny_tokenizer, max_tokens):
    ps, _ = pieces(tiny_tokenizer, CODE, max_tokens, "code")
    assert "".join(CODE[p.start:p.end] for p in ps) == CODE
    assert all(0 < p.n_tokens <= max_tokens for p in ps)
    assert all(a.end == b.start for a, b in zip(ps, ps[1:]))


def test_code_is_cut_at_definitions_when_one_fits(tiny_tokenizer):
    ps, _ = pieces(tiny_tokenizer, CODE, 128, "code")
    assert len(ps) > 3
    for p in ps[1:]:
        assert CODE[p.start:].startswith("def function_"), CODE[p.start:p.start + 30]
    assert ps[1].about.startswith("function_")


def test_prose_is_cut_at_blank_lines_before_inside_paragraphs(tiny_tokenizer):
    text = "\n\n".join(f"Paragraph {i} says that the lamp oil lasts {i} nights in winter." for i in range(40))
    ps, _ = pieces(tiny_tokenizer, text, 60, "doc")
    for p in ps[1:]:
        assert text[p.start:].startswith("Paragraph"), text[p.start:p.start + 20]


def test_markdown_chunks_know_their_heading_path(tiny_tokenizer):
    text = (FIXTURE / "docs" / "deploy.md").read_text()
    ps, _ = pieces(tiny_tokenizer, text, 40, "doc")
    abouts = [p.about for p in ps]
    assert "Deploying Lanterna > The nightly job" in abouts
    assert "Deploying Lanterna > Backups" in abouts


def test_cuts_fall_on_token_starts_never_inside_a_token_or_a_character(tiny_tokenizer):
    # One long line of multi-byte characters: no blank line or line start to cut at.
    text = "ünïcödé ☃ 雪 " * 200
    ps, enc = pieces(tiny_tokenizer, text, 50, "doc")
    starts = {o[0] for o in enc["offset_mapping"]}
    assert len(ps) > 5
    assert all(p.start in starts for p in ps)
    assert "".join(text[p.start:p.end] for p in ps) == text
    assert all(p.n_tokens <= 50 for p in ps)


def test_line_numbers_of_chunks(tiny_tokenizer):
    ps, _ = pieces(tiny_tokenizer, CODE, 128, "code")
    assert ps[0].line_start == 1
    for a, b in zip(ps, ps[1:]):
        assert b.line_start > a.line_end - 1
    assert ps[-1].line_end == CODE.rstrip("\n").count("\n") + 1


def test_overlapping_chunks_repeat_the_end_of_the_previous_one_from_a_line_start(tiny_tokenizer):
    ps, _ = pieces(tiny_tokenizer, CODE, 100, "code", overlap=20)
    assert len(ps) > 3
    for a, b in zip(ps, ps[1:]):
        assert a.start < b.start < a.end  # overlapping, always moving forward
        # the repeated part begins at a line (byte-level BPE may glue the newline to the indentation)
        assert CODE[b.start - 1] == "\n" or CODE[b.start] == "\n"
    assert ps[-1].end == len(CODE) and all(p.n_tokens <= 100 for p in ps)
