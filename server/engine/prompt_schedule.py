"""A1111's prompt editing and alternation: which text a prompt means at each denoising step.

The grammar is A1111's (modules/prompt_parser.py, the lark grammar of `get_learned_conditioning_prompt_schedules`),
read here by a small recursive-descent parser:

- `[from:to:when]` uses `from` up to step `when` and `to` after it; `[to:when]` adds `to` at `when`;
  `[from::when]` removes `from` at `when`. They nest (`a[b:[c:d:2]:1]e`).
- `when` with a decimal point is a fraction of the steps (`0.5`, `.25`), else a step number (`16`); A1111's
  current rule, `min(steps, int(fraction · steps))`, so `1.5` never switches and `0` switches before the first step.
- `[a|b|c]` alternates every step, starting with `a`; an option may be empty (`[fe|]male`).
- `(...)`, `(...:1.2)` and `[...]` emphasis are kept as written for the attention parser (prompt_syntax.py).
- Outside brackets, a stray `[`, `]`, `(`, `)` or `:` is text; a prompt the grammar cannot read at all (a `|`
  outside `[...]`, a bracket that holds one it cannot read) is one text for every step, as in A1111.

A schedule is a list of (end step, text): the text holds while the 0-based step index is at most its end step,
A1111's `reconstruct_cond_batch`. Steps count from 0 against end steps counted from 1, so `[a:b:16]` at 30 steps
uses `a` for 17 steps (0 to 16) and `[a|b]` runs a, a, b, a, b… exactly as A1111 samples them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLAIN = re.compile(r"(?:[^\\\[\]():|]|\\.)+")
# lark's SIGNED_NUMBER, between optional whitespace, closing the bracket
_WHEN = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*\]")
_STRAY = "[]():"


@dataclass
class _Scheduled:
    before: list | None
    after: list
    when: str
    step: int = 0


@dataclass
class _Alternate:
    options: list[list]


class _Fail(Exception):
    pass


def _sequence(s: str, i: int) -> tuple[list, int]:
    """A1111's `prompt`: plain text, whitespace and bracketed parts, up to the first character none of them takes."""
    items: list = []
    while i < len(s):
        m = _PLAIN.match(s, i)
        if m:
            items.append(m.group(0))
            i = m.end()
        elif s[i] in "([":
            try:
                part, i = (_round if s[i] == "(" else _square)(s, i)
            except _Fail:
                break
            items.append(part)
        else:
            break
    return items, i


def _expect(s: str, i: int, char: str):
    if i >= len(s) or s[i] != char:
        raise _Fail


def _round(s: str, i: int) -> tuple[list, int]:
    inner, j = _sequence(s, i + 1)
    if j < len(s) and s[j] == ":":
        weight, k = _sequence(s, j + 1)
        _expect(s, k, ")")
        return ["(", inner, ":", weight, ")"], k + 1
    _expect(s, j, ")")
    return ["(", inner, ")"], j + 1


def _square(s: str, i: int) -> tuple[object, int]:
    first, j = _sequence(s, i + 1)
    if j >= len(s):
        raise _Fail
    if s[j] == "]":
        return ["[", first, "]"], j + 1
    if s[j] == "|":
        options = [first]
        while j < len(s) and s[j] == "|":
            option, j = _sequence(s, j + 1)
            options.append(option)
        _expect(s, j, "]")
        return _Alternate(options), j + 1
    _expect(s, j, ":")
    m = _WHEN.match(s, j + 1)
    if m:  # [to:when]
        return _Scheduled(None, first, m.group(1)), m.end()
    second, k = _sequence(s, j + 1)
    _expect(s, k, ":")
    m = _WHEN.match(s, k + 1)
    if not m:
        raise _Fail
    return _Scheduled(first, second, m.group(1)), m.end()


def _parse(text: str) -> list | None:
    """A1111's `start`: prompts and stray brackets or colons; None when the grammar cannot read the text."""
    items: list = []
    i = 0
    while True:
        part, i = _sequence(text, i)
        items += part
        if i == len(text):
            return items
        if text[i] not in _STRAY:
            return None  # a `|` outside brackets, a backslash ending the prompt
        items.append(text[i])
        i += 1


def _walk(node):
    if isinstance(node, list):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, _Scheduled):
        yield node
        yield from _walk(node.before or [])
        yield from _walk(node.after)
    elif isinstance(node, _Alternate):
        yield node
        for option in node.options:
            yield from _walk(option)


def _at(node, step: int) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "".join(_at(item, step) for item in node)
    if isinstance(node, _Scheduled):
        return _at(node.before or [], step) if step <= node.step else _at(node.after, step)
    return _at(node.options[(step - 1) % len(node.options)], step)


def when_step(when: str, steps: int) -> int:
    """The end step of `[...:...:when]` (A1111 without hires fix): a decimal point makes it a fraction."""
    value = float(when)
    return min(steps, int(value * steps if "." in when else value))


def schedule(text: str, steps: int) -> list[tuple[int, str]]:
    """[(end step, text)], ascending; one entry when the prompt does not change."""
    tree = _parse(text)
    if tree is None:
        return [(steps, text)]
    ends = {steps}
    for node in _walk(tree):
        if isinstance(node, _Scheduled):
            node.step = when_step(node.when, steps)
            if node.step >= 1:
                ends.add(node.step)
        else:
            ends.update(range(1, steps + 1))
    return [(end, _at(tree, end)) for end in sorted(ends)]


def entry_at(entries: list[tuple[int, str]], step: int) -> int:
    """The index of the entry that holds at 0-based step `step` (the first whose end step is not below it)."""
    return next((k for k, (end, _) in enumerate(entries) if step <= end), 0)
