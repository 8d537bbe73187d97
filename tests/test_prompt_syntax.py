"""A1111's prompt syntax: attention weights and BREAK (cases from modules/prompt_parser.py's doctests and worked out
by reading its parse_prompt_attention), and chunks of 75 tokens (worked out from modules/sd_hijack_clip.py's
tokenize_line) on the tiny CLIP tokenizer."""

from __future__ import annotations

import pytest
from transformers import CLIPTokenizer

from server.engine.prompt_chunks import CHUNK, PLACEHOLDER, EmbeddingSource, Tokenizer, chunk_prompt
from server.engine.prompt_syntax import PromptSyntaxError, parse_attention, prompt_errors, resolve_embedding
from tests.support.tiny_models import write_tokenizer

BREAK = "BREAK"


def runs(text):
    return [BREAK if r.is_break else (r.text, r.weight) for r in parse_attention(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        # A1111's own doctests (prompt_parser.py, parse_prompt_attention), exact floats included
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ],
        ),
        # worked out from the same function's rules
        ("[blurry]", [("blurry", 1 / 1.1)]),
        ("[[a]]", [("a", 1 / 1.1 / 1.1)]),
        ("((a:1.5))", [("a", 1.5 * 1.1)]),
        ("(masterpiece:1.2), best quality", [("masterpiece", 1.2), (", best quality", 1.0)]),
        ("[unbalanced", [("unbalanced", 1 / 1.1)]),
        ("(a [b", [("a ", 1.1), ("b", 1.1 / 1.1)]),  # round ones close first, then square
        ("a ) b ]", [("a ) b ]", 1.0)]),  # nothing open: plain text
        ("x :1.3) y", [("x :1.3) y", 1.0)]),  # a weight outside round brackets is text
        ("\\\\ and \\x", [("\\ and x", 1.0)]),  # \\ is a backslash; a lone one is dropped
        ("(a:-1)", [("a", -1.0)]),
        ("", [("", 1.0)]),
        ("a BREAK b", [("a", 1.0), BREAK, ("b", 1.0)]),  # spaces around BREAK go with it
        ("(a BREAK b)", [("a", 1.1), BREAK, ("b", 1.1)]),
        ("BREAKfast, a break", [("BREAKfast, a break", 1.0)]),  # a whole word, upper case
        ("[a:b:0.5]", [("a:b:0.5", 1 / 1.1)]),  # prompt editing is not supported: read as attention
    ],
)
def test_attention_as_a1111_parses_it(text, expected):
    assert runs(text) == expected


def test_a_weight_that_is_not_a_number_is_named():
    # A1111 fails on float("1.2.3") inside its parser; here it is a message saying how to write it
    with pytest.raises(PromptSyntaxError, match="1.2.3"):
        parse_attention("(a:1.2.3)")
    assert prompt_errors("(a:.)", []) and not prompt_errors("(a:.5)", [])


def test_embedding_references_resolve_like_comfyui_names():
    known = ["EasyNegative", "style"]
    assert resolve_embedding("EasyNegative", known) == "EasyNegative"
    assert resolve_embedding("EasyNegative.safetensors", known) == "EasyNegative"
    assert resolve_embedding("easynegative.pt", known) == "EasyNegative"
    assert resolve_embedding("nope", known) is None
    errors = prompt_errors("a cat, (embedding:nope:1.2), embedding:style", known)
    assert len(errors) == 1 and "'nope'" in errors[0] and "EasyNegative, style" in errors[0]


# --- chunks ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    write_tokenizer(folder)
    return Tokenizer.of(CLIPTokenizer.from_pretrained(folder))


class Named(EmbeddingSource):
    """Embeddings by name, as the server's library answers (its matching is tested in test_text_encoding.py)."""

    def __init__(self, tok, lengths):
        self.lengths = lengths
        self.ids = {name: tok.encode([name])[0] for name in lengths}

    def match(self, tokens, at):
        for name, ids in self.ids.items():
            if tokens[at : at + len(ids)] == ids:
                return name, len(ids)
        return None

    def resolve(self, name):
        if name not in self.lengths:
            raise KeyError(name)
        return name

    def length(self, name):
        return self.lengths[name]


def ids(tok, text):
    return tok.encode([text])[0]


def body(chunk, tok):
    """The chunk's tokens between its start token and the padding."""
    assert chunk.tokens[0] == tok.start and chunk.tokens[-1] == tok.end and len(chunk.tokens) == CHUNK + 2
    inner = chunk.tokens[1:-1]
    while inner and inner[-1] == tok.end:
        inner = inner[:-1]
    return inner


def test_75_tokens_are_one_chunk_76_are_two(tok):
    man = ids(tok, "man")
    assert len(man) == 1
    one = chunk_prompt("man " * 75, tok)
    assert len(one) == 1 and body(one[0], tok) == man * 75
    two = chunk_prompt("man " * 76, tok)
    assert [body(c, tok) for c in two] == [man * 75, man]
    assert len(chunk_prompt("", tok)) == 1 and body(chunk_prompt("", tok)[0], tok) == []


def test_a_comma_within_20_tokens_moves_the_phrase_after_it_to_the_next_chunk(tok):
    man, comma = ids(tok, "man")[0], tok.comma
    near = chunk_prompt("man " * 70 + ", " + "man " * 10, tok)
    assert [body(c, tok) for c in near] == [[man] * 70 + [comma], [man] * 10]
    far = chunk_prompt("man " * 50 + ", " + "man " * 30, tok)  # the comma is 25 back: cut at 75
    assert [body(c, tok) for c in far] == [[man] * 50 + [comma] + [man] * 24, [man] * 6]
    at_edge = chunk_prompt("man " * 75 + ", man", tok)  # the 76th token is the comma: it opens chunk two
    assert [body(c, tok) for c in at_edge] == [[man] * 75, [comma, man]]


def test_break_weights_and_padding(tok):
    chunks = chunk_prompt("(man:1.3) dog BREAK [man]", tok)
    assert [body(c, tok) for c in chunks] == [ids(tok, "man") + ids(tok, "dog"), ids(tok, "man")]
    assert chunks[0].weights[:4] == [1.0, 1.3, 1.0, 1.0] and set(chunks[0].weights[3:]) == {1.0}
    assert chunks[1].weights[1] == 1 / 1.1
    assert len(chunk_prompt("man BREAK", tok)) == 1  # nothing after BREAK: no empty chunk


def test_embeddings_by_name_and_reference_take_one_position_per_vector(tok):
    library = Named(tok, {"easyneg": 4, "style": 3})
    chunks = chunk_prompt("man easyneg, (embedding:style:1.2) dog", tok, library)
    inner = body(chunks[0], tok)
    man, dog = ids(tok, "man"), ids(tok, "dog")
    assert inner == man + [PLACEHOLDER] * 4 + [tok.comma] + [PLACEHOLDER] * 3 + dog
    assert chunks[0].fixes == [(2, "easyneg"), (7, "style")]  # positions counted with the start token
    assert chunks[0].weights[7:10] == [1.2] * 3 and chunks[0].weights[2:6] == [1.0] * 4
    with pytest.raises(KeyError):
        chunk_prompt("embedding:nope", tok, library)


def test_an_embedding_that_does_not_fit_opens_the_next_chunk(tok):
    chunks = chunk_prompt("man " * 73 + "embedding:easyneg", tok, Named(tok, {"easyneg": 4}))
    assert len(body(chunks[0], tok)) == 73 and chunks[0].fixes == []
    assert chunks[1].fixes == [(1, "easyneg")] and body(chunks[1], tok) == [PLACEHOLDER] * 4
    # the words after a recent comma move on with the embedding among them
    moved = chunk_prompt("man " * 69 + ", dog easyneg man", tok, Named(tok, {"easyneg": 4}))
    assert body(moved[0], tok)[-1] == tok.comma and moved[1].fixes == [(2, "easyneg")]
    assert body(moved[1], tok) == ids(tok, "dog") + [PLACEHOLDER] * 4 + ids(tok, "man")
