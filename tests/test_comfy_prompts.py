"""`prompt_weighting: "comfy"`: ComfyUI's prompt syntax (cases worked out by reading comfy/sd1_clip.py's
`token_weights`, `parse_parentheses` and `tokenize_with_weights`) and its weighting, against a transcription of
`ClipTokenWeightEncoder.encode_token_weights` computed here from the tiny CLIP's raw hidden states."""

from __future__ import annotations

import pytest
import torch
from test_prompt_syntax import Named, body, ids
from transformers import CLIPTokenizer

from server.engine.comfy_prompt import comfy_chunks, comfy_prompt_errors, weighted_parts
from server.engine.prompt_chunks import PLACEHOLDER, Tokenizer
from server.engine.text_encoding import prompt_encoder
from tests.support.tiny_models import TEXT_DIM, write_tokenizer


@pytest.mark.parametrize(
    "text, expected",
    [
        ("(man:1.5), dog", [("man", 1.5), (", dog", 1.0)]),
        ("a ((man)) and (dog:0.5)", [("a ", 1.0), ("man", 1.1 * 1.1), (" and ", 1.0), ("dog", 0.5)]),
        # an explicit weight replaces the enclosing ones; brackets inside it still multiply
        ("((man:1.5))", [("man", 1.5)]),
        ("((man):1.5)", [("man", 1.5 * 1.1)]),
        ("a (b (c:2) d) e", [("a ", 1.0), ("b ", 1.1), ("c", 2.0), (" d", 1.1), (" e", 1.0)]),
        # square brackets are text, the weight is after the last colon, a colon first or not a number is text
        ("[man]", [("[man]", 1.0)]),
        ("(a:b:1.2)", [("a:b", 1.2)]),
        ("(a:b)", [("a:b", 1.1)]),
        ("(:1.3)", [(":1.3", 1.1)]),
        ("( man : 1.2 )", [(" man ", 1.2)]),  # float() takes the spaces
        # escapes: round brackets only; a stray ) makes the rest text; an unclosed ( is text
        ("\\(man\\) (dog)", [("(man) ", 1.0), ("dog", 1.1)]),
        ("a\\[b\\]", [("a\\[b\\]", 1.0)]),
        ("a) (b)", [("a) (b)", 1.0)]),
        ("(a b", [("(a b", 1.0)]),
        ("man BREAK [dog:cat:0.5]", [("man BREAK [dog:cat:0.5]", 1.0)]),
        ("", []),
    ],
)
def test_comfyui_reads_brackets_and_weights_as_its_token_weights_does(text, expected):
    assert weighted_parts(text) == expected


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    write_tokenizer(folder)
    return Tokenizer.of(CLIPTokenizer.from_pretrained(folder))


def test_groups_under_8_tokens_move_whole_longer_ones_are_cut_at_75(tok):
    man, dog, comma = ids(tok, "man")[0], ids(tok, "dog")[0], tok.comma
    # one unweighted part is one group: cut at 75 tokens, commas do not move phrases as in A1111
    cut = comfy_chunks("man " * 70 + ", " + "man " * 10, tok)
    assert [body(c, tok) for c in cut] == [[man] * 70 + [comma] + [man] * 4, [man] * 6]
    moved = comfy_chunks("man " * 72 + "(dog dog dog dog:1.2)", tok)  # 4 tokens, 3 places left: all move
    assert [body(c, tok) for c in moved] == [[man] * 72, [dog] * 4]
    assert moved[1].weights[:6] == [1.0, 1.2, 1.2, 1.2, 1.2, 1.0]
    split = comfy_chunks("man " * 72 + "(" + "dog " * 10 + ":1.2)", tok)  # 10 tokens: 3 here, 7 there
    assert [body(c, tok) for c in split] == [[man] * 72 + [dog] * 3, [dog] * 7]
    assert split[0].weights[73:77] == [1.2, 1.2, 1.2, 1.0] and all(len(c.tokens) == 77 for c in split)
    assert [body(c, tok) for c in comfy_chunks("", tok)] == [[]]
    assert [body(c, tok) for c in comfy_chunks("[man]", tok)] == [ids(tok, "[man]")]


def test_embeddings_only_by_reference_after_a_space_and_cut_like_words(tok):
    library = Named(tok, {"style": 3, "big": 10})
    chunks = comfy_chunks("man embedding:style, style (embedding:style:1.5) man,embedding:style", tok, library)
    inner = body(chunks[0], tok)
    man = ids(tok, "man")
    # the bare name and a reference not after a space are text; the comma after a name goes on as text
    text_after = ids(tok, ", style") + [PLACEHOLDER] * 3 + ids(tok, "man,embedding:style")
    assert inner == man + [PLACEHOLDER] * 3 + text_after
    assert chunks[0].fixes[:3] == [(2, "style", 0, 1), (3, "style", 1, 1), (4, "style", 2, 1)]
    second = 5 + len(ids(tok, ", style"))
    assert chunks[0].weights[second : second + 4] == [1.5, 1.5, 1.5, 1.0]
    big = comfy_chunks("man " * 70 + "embedding:big", tok, library)  # 10 vectors: 5 here, 5 there
    assert [f[2] for f in big[0].fixes] == [0, 1, 2, 3, 4] and big[0].fixes[0][0] == 71
    assert big[1].fixes == [(1 + i, "big", 5 + i, 1) for i in range(5)]
    with pytest.raises(KeyError):
        comfy_chunks("a embedding:nope", tok, library)


def test_prompt_errors_are_unknown_embeddings_and_weights_that_are_not_finite():
    assert comfy_prompt_errors("(man:1.2) embedding:style, [x:y:0.5] (a:b)", ["style"]) == []
    errors = comfy_prompt_errors("(man:nan) (dog:inf), embedding:nope x embedding:", ["style"])
    assert len(errors) == 4 and "nan" in errors[0] and "inf" in errors[1]
    assert "'nope'" in errors[2] and "style" in errors[2] and "without a name" in errors[3]


# --- the weighting, on the tiny CLIP ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def comfy(pipe, store):
    return lambda clip_skip=1: prompt_encoder(pipe, store.config, clip_skip, "comfy")


@pytest.fixture(scope="module")
def a1111(pipe, store):
    return lambda clip_skip=1: prompt_encoder(pipe, store.config, clip_skip)


def raw(pipe, parts: list[tuple[str, float]], clip_skip: int = 1) -> tuple[torch.Tensor, list[float]]:
    """The tiny CLIP's (77, dim) output for the parts' tokens between start and end tokens, and each position's
    weight; `parts` as ComfyUI tokenizes them, each text on its own."""
    tk = pipe.tokenizer
    tokens, weights = [tk.bos_token_id], [1.0]
    for text, weight in parts:
        words = tk([text], add_special_tokens=False)["input_ids"][0]
        tokens += words
        weights += [weight] * len(words)
    tokens += [tk.eos_token_id] * (77 - len(tokens))
    weights += [1.0] * (77 - len(weights))
    out = pipe.text_encoder(torch.tensor([tokens]), output_hidden_states=True)
    if clip_skip == 1:
        return out[0][0], weights
    norm = getattr(pipe.text_encoder, "text_model", pipe.text_encoder).final_layer_norm  # transformers 5 or 4
    return norm(out.hidden_states[-clip_skip])[0], weights


def comfyui_formula(z: torch.Tensor, empty: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """ComfyUI's encode_token_weights written out: each weighted position moved from the empty prompt's output."""
    out = z.clone()
    for j, w in enumerate(weights):
        if w != 1.0:
            out[j] = (z[j] - empty[j]) * w + empty[j]
    return out


@pytest.mark.parametrize(
    "prompt, parts",
    [
        ("(man:1.5), dog", [("man", 1.5), (", dog", 1.0)]),
        ("a ((man)) and (dog:0.5)", [("a ", 1.0), ("man", 1.1 * 1.1), (" and ", 1.0), ("dog", 0.5)]),
    ],
)
@pytest.mark.parametrize("clip_skip", [1, 2])
def test_weighted_tokens_follow_comfyuis_formula(pipe, comfy, a1111, prompt, parts, clip_skip):
    with torch.no_grad():
        z, weights = raw(pipe, parts, clip_skip)
        empty, _ = raw(pipe, [], clip_skip)
        got = comfy(clip_skip).encode(prompt)
        assert got.shape == (1, 77, TEXT_DIM)
        assert torch.equal(got[0], comfyui_formula(z, empty, weights))
        assert not torch.allclose(got, a1111(clip_skip).encode(prompt), atol=1e-4)
        # a weight below 1 moves the token towards the empty prompt's output at its position
        position = weights.index(0.5) if 0.5 in weights else None
        if position is not None:
            assert (got[0, position] - empty[position]).norm() < (z[position] - empty[position]).norm()


def test_an_unweighted_prompt_is_the_same_in_both_modes(pipe, comfy, a1111):
    prompt = "a man walking in the city, (a dog)"
    with torch.no_grad():
        assert not torch.equal(comfy().encode(prompt), a1111().encode(prompt))  # (a dog) is 1.1
        plain = "a man walking in the city, a dog"
        assert torch.equal(comfy().encode(plain), a1111().encode(plain))
        assert torch.equal(comfy().encode(plain), pipe.encode_prompt(plain, "cpu", 1, False)[0])


def test_square_brackets_are_text_not_a_weight(pipe, comfy, a1111):
    with torch.no_grad():
        got = comfy().encode("a [man] walking")
        z, weights = raw(pipe, [("a [man] walking", 1.0)])
        assert set(weights) == {1.0} and torch.equal(got[0], z)
        a1111_chunk = a1111().chunks("a [man] walking")[0]
        assert a1111_chunk.weights[2] == pytest.approx(1 / 1.1) and "[" not in pipe.tokenizer.decode(a1111_chunk.tokens)


def test_a_weighted_embedding_and_prompts_of_different_lengths(pipe, comfy, a1111):
    with torch.no_grad():
        z = a1111().encode("embedding:marionette_style")[0]  # its 3 vectors at 1..3, unweighted
        empty, _ = raw(pipe, [])
        text = comfy()
        got = text.encode("(embedding:marionette_style:1.5)")[0]
        assert torch.equal(got, comfyui_formula(z, empty, [1.0] + [1.5] * 3 + [1.0] * 73))
        assert text.embeddings.used == ["marionette_style"]
        # cond and uncond of different chunk counts: each repeated whole to a common multiple, as ComfyUI batches
        two, three, one = text.encode_all(["man " * 80, "man " * 160, "dog"])
        assert two.shape == three.shape == one.shape == (1, 6 * 77, TEXT_DIM)
        assert torch.equal(one, text.encode("dog").repeat(1, 6, 1)) and torch.equal(two[:, :154], two[:, 154:308])
        assert text.chunk_counts["man " * 160] == 3


def test_no_prompt_editing_or_break_in_comfyui(comfy, a1111):
    prompt = "a [man:dog:0.5] BREAK walking"
    assert comfy().schedule(prompt, 10) == [(10, prompt)]
    assert len(a1111().schedule(prompt, 10)) == 2
    text = comfy()
    chunks = text.chunks(prompt)  # one chunk: the brackets, colons and BREAK are words
    assert len(chunks) == 1 and body(chunks[0], text.tok) == ids(text.tok, prompt)
