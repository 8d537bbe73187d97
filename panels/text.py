"""Panel text helpers."""


def wrap(text: str, width: int) -> list[str]:
    """`text` as lines of at most `width` characters (a longer word stays whole), for labels."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])
