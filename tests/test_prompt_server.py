"""A1111 prompts through the real server: a long weighted prompt with embeddings, clip skip 2 and an IP-Adapter
reference end to end (the manifest records the encoding and the embeddings' hashes); a `<lora:...>` tag is the same
LoRA in `loras` (/plan and the manifest name its tag) and prompt editing is recorded; field-exact 422s for prompts
the server cannot read."""

from __future__ import annotations

import hashlib

import httpx
import numpy as np
from conftest import TOKEN
from helpers import multipart, png, read_events, tiny_spec

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
LONG = "(masterpiece:1.2), best quality, [blurry], " + "a man walking in the city at night, " * 9


def test_a1111_prompt_with_embeddings_clip_skip_and_a_reference(tiny_server, tiny_models):
    spec = tiny_spec(
        prompt=LONG + "embedding:marionette_style",
        negative_prompt="EasyNegative, (worst quality:1.4)",
        clip_skip=2,
        references=[{"weight": 0.6}],
    )
    image = np.random.default_rng(2).uniform(0, 255, (48, 48, 3)).astype(np.uint8)
    with httpx.Client(base_url=tiny_server.url, headers=HEADERS, timeout=180) as client:
        names = {m["name"] for m in client.get("/models").json()["embedding"]}
        assert names == {"EasyNegative", "marionette_style", "concept"}
        data, files = multipart(spec, reference=[png(image)])
        r = client.post("/jobs", data=data, files=files)
        assert r.status_code == 202, r.text
        job = r.json()["id"]
        with client.stream("GET", f"/jobs/{job}/events") as events:
            kinds = [k for _, k, _ in read_events(events)]
        assert kinds[-1] == "done" and kinds.count("frame") == 4, kinds
        manifest = client.get(f"/jobs/{job}/manifest").json()
    encoding = manifest["prompt_encoding"]
    assert encoding["clip_skip"] == 2 and encoding["chunks"] == {"prompt": 2, "negative_prompt": 1}
    folder = tiny_models / "embeddings"
    assert [(e["name"], e["vectors"], e["sha256"]) for e in encoding["embeddings"]] == [
        (n, v, {f: hashlib.sha256((folder / f).read_bytes()).hexdigest()})
        for n, v, f in (("marionette_style", 3, "marionette_style.pt"), ("EasyNegative", 4, "EasyNegative.safetensors"))
    ]
    assert manifest["spec"]["clip_skip"] == 2


def test_unreadable_prompts_are_field_exact_422s(tiny_server):
    def fields(**over):
        with httpx.Client(base_url=tiny_server.url, headers=HEADERS, timeout=60) as client:
            for route in ("/plan", "/jobs"):
                r = client.post(route, json=tiny_spec(**over))
                assert r.status_code == 422, (route, r.text)
        return {e["field"]: e["message"] for e in r.json()["detail"]}

    travel = fields(prompts=[{"frame": 0, "prompt": "a man"}, {"frame": 3, "prompt": "embedding:nope, a dog"}])
    assert list(travel) == ["prompts[1].prompt"] and "'nope'" in travel["prompts[1].prompt"]
    assert "EasyNegative" in travel["prompts[1].prompt"]  # the configured names are listed
    negative = fields(negative_prompt="(embedding:bad_hands:1.2)")
    assert list(negative) == ["negative_prompt"] and "bad_hands" in negative["negative_prompt"]
    weight = fields(prompt="(a man:1.2.3)")
    assert list(weight) == ["prompt"] and "1.2.3" in weight["prompt"]


def test_plan_names_the_embeddings_the_prompts_use_with_their_hashes(tiny_server, tiny_models):
    """What a batch's fingerprint takes, so that a changed embedding file redoes the action: by reference or by a
    name in the text (case and spaces aside), in config order; an embedding no prompt names is left out."""
    spec = tiny_spec(prompt="a man, embedding:marionette_style.pt", negative_prompt="blurry, easy negative")
    with httpx.Client(base_url=tiny_server.url, headers=HEADERS, timeout=60) as client:
        r = client.post("/plan", params={"hashes": "wait"}, json=spec)
    assert r.status_code == 200, r.text
    folder = tiny_models / "embeddings"
    assert [(e["name"], e["sha256"]) for e in r.json()["embeddings"]] == [
        (n, {f: hashlib.sha256((folder / f).read_bytes()).hexdigest()})
        for n, f in (("EasyNegative", "EasyNegative.safetensors"), ("marionette_style", "marionette_style.pt"))
    ]


def _frames(client, spec) -> tuple[list[bytes], dict]:
    r = client.post("/jobs", json=spec)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    with client.stream("GET", f"/jobs/{job}/events") as events:
        kinds = [k for _, k, _ in read_events(events)]
    assert kinds[-1] == "done", kinds
    frames = [client.get(f"/jobs/{job}/frames/{i}").content for i in range(spec["frames"])]
    return frames, client.get(f"/jobs/{job}/manifest").json()


def test_a_lora_tag_is_the_lora_in_loras_and_edits_are_recorded(tiny_server):
    prompt = "a wooden [marionette:puppet:0.5] dancing"
    with httpx.Client(base_url=tiny_server.url, headers=HEADERS, timeout=180) as client:
        tagged = tiny_spec(prompt=prompt + " <lora:style:0.8>")
        plan = client.post("/plan", json=tagged)
        assert plan.status_code == 200, plan.text
        want = {"name": "style", "weight": 0.8, "from_prompt": "prompt", "tag": "<lora:style:0.8>"}
        assert plan.json()["loras"] == [want]
        from_tag, manifest = _frames(client, tagged)
        from_list, _ = _frames(client, tiny_spec(prompt=prompt, loras=[{"name": "style", "weight": 0.8}]))
        without, _ = _frames(client, tiny_spec(prompt=prompt))
    assert from_tag == from_list and from_tag != without
    assert manifest["plan"]["loras"] == [want]
    assert manifest["prompt_encoding"]["prompt_editing"] == {
        "prompt": [[1, "a wooden marionette dancing "], [3, "a wooden puppet dancing "]]
    }


def test_unusable_tags_are_field_exact_422s(tiny_server):
    with httpx.Client(base_url=tiny_server.url, headers=HEADERS, timeout=60) as client:

        def fields(**over):
            for route in ("/plan", "/jobs"):
                r = client.post(route, json=tiny_spec(**over))
                assert r.status_code == 422, (route, r.text)
            return {e["field"]: e["message"] for e in r.json()["detail"]}

        unknown = fields(prompts=[{"frame": 0, "prompt": "a man"}, {"frame": 3, "prompt": "a man <lora:nope:0.5>"}])
        assert list(unknown) == ["prompts[1].prompt"]
        assert "<lora:nope:0.5>" in unknown["prompts[1].prompt"] and "style" in unknown["prompts[1].prompt"]
        hypernet = fields(negative_prompt="<hypernet:bad:1>")
        assert list(hypernet) == ["negative_prompt"] and "not supported" in hypernet["negative_prompt"]
        clash = fields(prompt="<lora:style:0.5>", negative_prompt="<lora:style:0.7>")
        assert list(clash) == ["negative_prompt"] and "same weight" in clash["negative_prompt"]
