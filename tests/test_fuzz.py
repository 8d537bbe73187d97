"""Schema-driven fuzzing of the HTTP API, in-process on the tiny models: request bodies drawn from the app's own
OpenAPI schema (valid ones, and ones with any node replaced by arbitrary JSON), raw bytes, form parts and header
values. Any 5xx fails. Bounded: a fixed number of examples per route, no deadline per example."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from helpers import read_events, tiny_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.api import Settings, create_app
from server.loaders import ModelConfig

EXAMPLES = 100
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
TALLY = {"requests": 0, "5xx": []}

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


def from_schema(schema: dict, components: dict, mutate: bool) -> st.SearchStrategy:
    """A strategy for values of a JSON schema (the subset the app's schema uses); with `mutate`, any node may be
    replaced by arbitrary JSON."""

    def build(node):
        if "$ref" in node:
            return st.deferred(lambda: build(components[node["$ref"].rsplit("/", 1)[1]]))
        if "oneOf" in node:
            out = st.one_of([build(n) for n in node["oneOf"]])
        elif "enum" in node:
            out = st.sampled_from(node["enum"])
        else:
            kinds = node.get("type", "object")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            out = st.one_of([typed(k, node) for k in kinds])
        return st.one_of(out, ANY_JSON) if mutate else out

    def typed(kind, node):
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind == "integer":
            lo, hi = node.get("minimum", -(2**40)), node.get("maximum", 2**40)
            values = st.integers(lo, hi)
            if "multipleOf" in node:
                values = values.map(lambda v: max(lo, v - v % node["multipleOf"]))
            return values
        if kind == "number":
            return st.floats(
                node.get("minimum", node.get("exclusiveMinimum")),
                node.get("maximum"),
                allow_nan=False,
                allow_infinity=False,
            )
        if kind == "string":
            if node.get("format") == "binary":
                return st.binary(max_size=64)
            return st.text(min_size=node.get("minLength", 0), max_size=24)
        if kind == "array":
            return st.lists(
                build(node.get("items", {})), min_size=node.get("minItems", 0), max_size=min(node.get("maxItems", 4), 4)
            )
        props = node.get("properties", {})
        required = set(node.get("required", ()))
        return st.fixed_dictionaries(
            {k: build(v) for k, v in props.items() if k in required},
            optional={k: build(v) for k, v in props.items() if k not in required},
        )

    return build(schema)


@pytest.fixture(scope="module")
def fuzzed(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        Settings(
            models=ModelConfig.load(tiny_models / "models.toml"), data_dir=root / "jobs", log_dir=root, max_upload_mb=4
        )
    )
    with TestClient(app, base_url="http://127.0.0.1:7860", raise_server_exceptions=False) as client:
        done = client.post("/jobs", json=tiny_spec(steps=1, frames=2)).json()["id"]
        with client.stream("GET", f"/jobs/{done}/events") as r:
            read_events(r)
        # A long job keeps the worker busy, so the valid jobs the fuzzing submits wait in the queue and are
        # cancelled there instead of running.
        blocker = client.post("/jobs", json=tiny_spec(steps=150, frames=32)).json()["id"]
        client.schema = client.get("/openapi.json").json()
        client.done = done
        yield client
        client.delete(f"/jobs/{blocker}")
    print(f"\nfuzz: {TALLY['requests']} requests, {len(TALLY['5xx'])} answered 5xx")


def send(client, method, path, **kw):
    r = client.request(method, path, **kw)
    TALLY["requests"] += 1
    if r.status_code >= 500:
        TALLY["5xx"].append((method, path, r.status_code, r.text[:300]))
    assert r.status_code < 500, (method, path, kw.get("content", kw.get("json")), r.text)
    if method == "POST" and path == "/jobs" and r.status_code == 202:
        client.delete(f"/jobs/{r.json()['id']}")
    return r


def body_strategy(client, path, content_type, mutate):
    schema = client.schema
    media = schema["paths"][path]["post"]["requestBody"]["content"][content_type]["schema"]
    return from_schema(media, schema["components"]["schemas"], mutate)


@pytest.mark.parametrize("path", ["/jobs", "/plan", "/pose/draw"])
def test_json_bodies_from_the_schema(fuzzed, path):
    @FUZZ
    @given(
        body=st.one_of(
            body_strategy(fuzzed, path, "application/json", False),
            body_strategy(fuzzed, path, "application/json", True),
        )
    )
    def check(body):
        text = json.dumps(body)  # NaN and Infinity go out as JSON's non-standard literals, as a careless client's
        send(fuzzed, "POST", path, content=text.encode(), headers={"Content-Type": "application/json"})

    check()


def test_raw_bodies_and_content_types(fuzzed):
    @FUZZ
    @given(
        path=st.sampled_from(["/jobs", "/plan", "/pose/draw", "/release"]),
        raw=st.binary(max_size=200),
        content_type=st.sampled_from(
            [
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "multipart/form-data; boundary=x",
                "",
            ]
        ),
    )
    def check(path, raw, content_type):
        send(fuzzed, "POST", path, content=raw, headers={"Content-Type": content_type} if content_type else {})

    check()


def test_multipart_submissions_from_the_schema(fuzzed):
    form = fuzzed.schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    spec = body_strategy(fuzzed, "/jobs", "application/json", True)

    @FUZZ
    @given(
        spec=st.one_of(spec.map(json.dumps), st.text(max_size=40)),
        parts=st.lists(
            st.tuples(st.sampled_from(sorted(form["properties"]) + ["other"]), st.binary(max_size=80), st.booleans()),
            max_size=6,
        ),
    )
    def check(spec, parts):
        data = {name: blob.decode("latin-1") for name, blob, as_file in parts if not as_file}
        files = [(name, (f"{name}.png", blob, "image/png")) for name, blob, as_file in parts if as_file]
        data["spec"] = spec
        send(fuzzed, "POST", "/jobs", data=data, files=files or [("depth", ("d.png", b"", "image/png"))])

    check()


def test_paths_and_header_values(fuzzed):
    @FUZZ
    @given(
        job=st.one_of(st.just(fuzzed.done), st.text(max_size=30)),
        index=st.integers(-(2**70), 2**70),
        last=st.binary(max_size=24),
        route=st.sampled_from(["", "/events", "/frames/{i}", "/previews/{i}", "/manifest"]),
    )
    def check(job, index, last, route):
        from urllib.parse import quote

        path = f"/jobs/{quote(job, safe='')}" + route.format(i=index)
        headers = {"Last-Event-ID": last} if route == "/events" else {}
        try:
            send(fuzzed, "GET", path, headers=headers)
        except ValueError:  # httpx refuses a header value with a newline before it goes out
            pass

    check()
    assert TALLY["requests"] >= 5 * EXAMPLES and not TALLY["5xx"], TALLY["5xx"][:5]
