"""The checks every request's raw input passes before anything reads it further: JSON text (size, nesting, finite
numbers, encodable text), PNG headers (format, declared size, a pixel limit: before any decoding) and header
values. Each failure is a SpecError naming the field. Standard library only.
"""

from __future__ import annotations

import json
import math
import re
import struct

from .numbers import LIMITS
from .spec import SpecError

MAX_JSON_BYTES = 16 * 2**20  # a 1024-frame camera path or pose file is a few MiB
MAX_DEPTH = 32  # the deepest spec (camera matrices) is 5 levels
MAX_TEXT = 20_000  # characters in any one string (a prompt, a name)
MAX_INT = 2**63 - 1
MAX_PIXELS = LIMITS["size"][1] ** 2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EVENT_ID = re.compile(r"[0-9]{1,12}")


class _Refused(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is too large")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(int(text)) > MAX_INT:
        raise _Refused(f"the integer {text[:40]}{'...' if len(text) > 40 else ''} is too large")
    return int(text)


def _no_constant(name: str):
    raise _Refused(f"{name} is not a number JSON allows; send a finite number")


def decode_json(raw: bytes | str, where: str, hint: str = ""):
    """Decode one JSON document a client sent. Raises SpecError([(where, ...)]) for anything refused."""
    hint = f" ({hint})" if hint else ""
    if len(raw) > MAX_JSON_BYTES:
        raise SpecError([(where, f"JSON of {len(raw)} bytes is more than the {MAX_JSON_BYTES // 2**20} MiB allowed")])
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SpecError([(where, f"is not UTF-8 text (byte {e.start}){hint}")]) from None
    try:
        data = json.loads(raw, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant)
    except _Refused as e:
        raise SpecError([(where, str(e))]) from None
    except RecursionError:
        raise SpecError([(where, f"JSON nested deeper than {MAX_DEPTH} levels")]) from None
    except ValueError as e:
        raise SpecError([(where, f"not valid JSON: {e}{hint}")]) from None
    errors = tree_errors(data, where)
    if errors:
        raise SpecError(errors)
    return data


def tree_errors(data, where: str) -> list[tuple[str, str]]:
    """Nesting depth and text of a decoded JSON value, walked without recursion."""
    errors = []
    # A spec's fields are named as parse_spec names them ("prompt", "camera.frames[0].K"); others from `where`.
    stack = [(data, "" if where == "spec" else where, 1)]
    while stack and len(errors) < 20:
        value, at, depth = stack.pop()
        if depth > MAX_DEPTH:
            return [(at or where, f"JSON nested deeper than {MAX_DEPTH} levels")]
        if isinstance(value, str):
            errors += text_errors(value, at or where)
        elif isinstance(value, dict):
            for k, v in value.items():
                name = f"{at}.{k[:40]}" if at else k[:40]
                errors += text_errors(k, name, key=True)
                stack.append((v, name, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, f"{at}[{i}]", depth + 1) for i, v in enumerate(value))
    return errors


def text_errors(text: str, where: str, key: bool = False) -> list[tuple[str, str]]:
    what = "a key" if key else "text"
    if len(text) > MAX_TEXT:
        return [(where, f"{what} of {len(text)} characters is more than the {MAX_TEXT} allowed")]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return [
            (
                where,
                f"{what} holds a lone surrogate (\\u{ord(text[e.start]):04x} at {e.start}), which is not "
                f"a character; send valid Unicode",
            )
        ]
    if "\x00" in text:
        return [(where, f"{what} holds a NUL character")]
    return []


def png_size(data: bytes, where: str) -> tuple[int, int]:
    """(width, height) a PNG declares in its header, read without decoding it; SpecError if it is no PNG or
    declares more than MAX_PIXELS pixels."""
    if not data.startswith(PNG_SIGNATURE):
        raise SpecError([(where, "is not a PNG (guides and keyframes are sent as PNG files)")])
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise SpecError([(where, "is a truncated PNG: its header (IHDR) is missing")])
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0 or width * height > MAX_PIXELS:
        raise SpecError(
            [
                (
                    where,
                    f"declares {width}x{height} pixels; at most {MAX_PIXELS} pixels "
                    f"(a {LIMITS['size'][1]}x{LIMITS['size'][1]} job) are accepted",
                )
            ]
        )
    return width, height


def check_png_header(data: bytes, where: str, width: int, height: int):
    size = png_size(data, where)
    if size != (width, height):
        raise SpecError([(where, f"is {size[0]}x{size[1]}, the job is {width}x{height}")])


def parse_event_id(value: str | None) -> int:
    """The Last-Event-ID header: absent -> 0, else a whole number of at most 12 digits."""
    if value is None or value == "":
        return 0
    if not _EVENT_ID.fullmatch(value):
        raise SpecError(
            [("Last-Event-ID", f"must be the id of an event received (a whole number), got {value[:40]!r}")]
        )
    return int(value)
