"""Server-sent event framing: one event per job step, frame or state change, each with an id to resume from."""

from __future__ import annotations

import json


def format_event(seq: int, kind: str, data: dict) -> bytes:
    """One server-sent event. `id` lets a client resume with Last-Event-ID."""
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def parse_events(lines):
    """Parse a server-sent event stream (an iterable of text lines) into (id, type, data) tuples."""
    seq, kind, data = None, "message", []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield seq, kind, json.loads("\n".join(data))
            seq, kind, data = None, "message", []
        elif line.startswith("id:"):
            seq = int(line[3:].strip())
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
