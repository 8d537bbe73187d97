"""A1111's prompt editing and alternation read into its schedules, and `<lora:...>` tags read as A1111 reads them;
pure Python. The expected schedules are A1111's own: the doctests and the comment example of
modules/prompt_parser.py, and the wiki's "a [fantasy:cyberpunk:16] landscape" at 30 steps."""

from __future__ import annotations

import pytest

from server.engine.prompt_schedule import entry_at, schedule
from server.engine.prompt_tags import job_loras, read_tags, strip_tags, tag_loras
from server.protocol import parse_spec

# A1111's doctests (get_learned_conditioning_prompt_schedules, 10 steps), as its current code answers them.
A1111_DOCTESTS = {
    "test": [(10, "test")],
    "a [b:3]": [(3, "a "), (10, "a b")],
    "a [b: 3]": [(3, "a "), (10, "a b")],
    "a [[[b]]:2]": [(2, "a "), (10, "a [[b]]")],
    "[(a:2):3]": [(3, ""), (10, "(a:2)")],
    "a [b : c : 1] d": [(1, "a b  d"), (10, "a  c  d")],
    "a[b:[c:d:2]:1]e": [(1, "abe"), (2, "ace"), (10, "ade")],
    "a [unbalanced": [(10, "a [unbalanced")],
    "a [b:.5] c": [(5, "a  c"), (10, "a b c")],
    "((a][:b:c [d:3]": [(3, "((a][:b:c "), (10, "((a][:b:c d")],
    "[a|(b:1.1)]": [(k, "a" if k % 2 else "(b:1.1)") for k in range(1, 11)],
    "[fe|]male": [(k, "female" if k % 2 else "male") for k in range(1, 11)],
    "[fe|||]male": [(k, "female" if k % 4 == 1 else "male") for k in range(1, 11)],
}


@pytest.mark.parametrize("prompt", list(A1111_DOCTESTS))
def test_a1111s_own_examples(prompt):
    assert schedule(prompt, 10) == A1111_DOCTESTS[prompt]


def test_the_wiki_and_comment_examples():
    assert schedule("a [fantasy:cyberpunk:16] landscape", 30) == [
        (16, "a fantasy landscape"),
        (30, "a cyberpunk landscape"),
    ]
    text = (
        "fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6]"
        "[ in background:0.25] [shoddy:masterful:0.5]"
    )
    assert schedule(text, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful"),
    ]


def test_when_rounding_and_texts_the_grammar_cannot_read():
    assert schedule("[a:b:0.5]", 7) == [(3, "a"), (7, "b")]  # int(0.5 * 7)
    assert schedule("[a:b:1.5]", 10) == [(10, "a")]  # a fraction past the end never switches
    assert schedule("[a:b:1.0]", 10) == [(10, "a")]  # a decimal point makes it a fraction
    assert schedule("[a:b:0]", 10) == [(10, "b")]  # 0: "b" from the first step
    assert schedule("[a:b:40]", 30) == [(30, "a")]
    assert schedule("a | b [c:d:2]", 10) == [(10, "a | b [c:d:2]")]  # `|` outside brackets: one text
    assert schedule("(a:1.2), [b:c:0.5]", 4) == [(2, "(a:1.2), b"), (4, "(a:1.2), c")]
    assert schedule("embedding:EasyNegative, (worst:1.4)", 10) == [(10, "embedding:EasyNegative, (worst:1.4)")]


def test_the_step_a_text_holds_as_a1111_samples():
    # index from 0 against end steps from 1: [a:b:16] at 30 steps is "a" for 17 steps
    entries = schedule("[a:b:16]", 30)
    assert [entries[entry_at(entries, i)][1] for i in range(30)] == ["a"] * 17 + ["b"] * 13
    alternating = schedule("[a|b]", 6)
    assert [alternating[entry_at(alternating, i)][1] for i in range(6)] == ["a", "a", "b", "a", "b", "a"]


def test_lora_tags_as_a1111_reads_them():
    loras, errors = read_tags("a man <lora:style:0.8>, <lora:other> <lyco:third:0.5:1.0> <lora:x:te=0.2:unet=0.4>")
    assert errors == []
    assert [(m.name, m.te, m.unet) for m in loras] == [
        ("style", 0.8, 0.8),
        ("other", 1.0, 1.0),
        ("third", 0.5, 1.0),
        ("x", 0.2, 0.4),
    ]
    assert loras[0].weight == 0.8 and loras[2].weight == (0.5, 1.0)
    assert strip_tags("a man <lora:style:0.8>, walking") == "a man , walking"
    _, errors = read_tags("<hypernet:h:1> <lora:s:abc> <foo:bar> <lora:s:1:1:8> <lora:s:9>")
    assert [e.split(":")[0] for e in errors] == ["<hypernet", "<lora", "<foo", "<lora", "<lora"]
    assert "not supported" in errors[0] and "not a number" in errors[1] and "dyn" in errors[3]
    assert "outside" in errors[4]


def _spec(**over):
    data = {"prompt": "a man", "negative_prompt": "", "base": "sd15", "motion_module": "v2"}
    return parse_spec({**data, **over})


def test_tags_join_the_spec_loras_and_conflicts_are_named():
    spec = _spec(
        prompt="a man <lora:style:0.6>",
        negative_prompt="<lora:neg:-1>",
        prompts=[{"frame": 0, "prompt": "a <lora:style:0.6>"}, {"frame": 3, "prompt": "<lora:travel:0.3:0.9>"}],
        loras=[{"name": "style", "weight": 1.0}, {"name": "plain", "weight": 0.5}],
    )
    assert job_loras(spec) == [
        {"name": "style", "weight": 0.6, "from_prompt": "prompt", "tag": "<lora:style:0.6>"},  # the tag wins
        {"name": "plain", "weight": 0.5},
        {"name": "neg", "weight": -1.0, "from_prompt": "negative_prompt", "tag": "<lora:neg:-1>"},
        {"name": "travel", "weight": [0.3, 0.9], "from_prompt": "prompts[1].prompt", "tag": "<lora:travel:0.3:0.9>"},
    ]
    clash = _spec(prompt="<lora:s:0.5>", prompts=[{"frame": 0, "prompt": "<lora:s:0.7>"}], negative_prompt="")
    assert [f for f, _ in tag_loras(clash)[1]] == ["prompts[0].prompt"]
    twice = _spec(prompt="<lora:s:0.5> <lora:s:0.5>")
    assert [f for f, _ in tag_loras(twice)[1]] == ["prompt"]
