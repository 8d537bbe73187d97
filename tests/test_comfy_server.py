"""`prompt_weighting` through the real server: "a1111" is today's job bit for bit, "comfy" changes the frames of a
weighted prompt and not those of an unweighted one; /plan and the manifest say which; other values are 422s."""

from __future__ import annotations

import httpx
import pytest
from conftest import TOKEN
from helpers import tiny_spec
from test_prompt_server import _frames

from server.protocol import SpecError, parse_spec

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
WEIGHTED = "a (wooden:1.6) marionette, ((dancing))"
PLAIN = "a wooden marionette dancing"


def test_comfy_weighting_changes_weighted_prompts_only(tiny_server):
    with httpx.Client(base_url=tiny_server.url, headers=HEADERS, timeout=180) as client:
        plan = client.post("/plan", json=tiny_spec(prompt=WEIGHTED, prompt_weighting="comfy"))
        assert plan.status_code == 200, plan.text
        assert plan.json()["prompt_weighting"] == "comfy"
        today, today_manifest = _frames(client, tiny_spec(prompt=WEIGHTED))
        a1111, _ = _frames(client, tiny_spec(prompt=WEIGHTED, prompt_weighting="a1111"))
        comfy, manifest = _frames(client, tiny_spec(prompt=WEIGHTED, prompt_weighting="comfy"))
        plain_today, _ = _frames(client, tiny_spec(prompt=PLAIN))
        plain_comfy, _ = _frames(client, tiny_spec(prompt=PLAIN, prompt_weighting="comfy"))
    assert a1111 == today and comfy != today
    assert plain_comfy == plain_today and plain_today != today
    assert today_manifest["prompt_encoding"]["weighting"] == "a1111"
    assert manifest["prompt_encoding"]["weighting"] == "comfy" and manifest["plan"]["prompt_weighting"] == "comfy"
    assert manifest["spec"]["prompt_weighting"] == "comfy"


def test_other_weightings_and_unreadable_comfy_prompts_are_field_exact_422s(tiny_server):
    with pytest.raises(SpecError) as refused:
        parse_spec(tiny_spec(prompt_weighting="compel"))
    assert [f for f, _ in refused.value.errors] == ["prompt_weighting"] and "a1111, comfy" in str(refused.value)
    with httpx.Client(base_url=tiny_server.url, headers=HEADERS, timeout=60) as client:
        for over, field, words in (
            ({"prompt_weighting": "A1111"}, "prompt_weighting", "a1111, comfy"),
            ({"prompt_weighting": "comfy", "prompt": "(man:nan)"}, "prompt", "finite"),
            ({"prompt_weighting": "comfy", "negative_prompt": "x embedding:nope"}, "negative_prompt", "'nope'"),
        ):
            for route in ("/plan", "/jobs"):
                r = client.post(route, json=tiny_spec(**over))
                assert r.status_code == 422, (route, r.text)
                detail = r.json()["detail"]
                assert [d["field"] for d in detail] == [field] and words in detail[0]["message"], detail
        # A1111's syntax errors are not ComfyUI's: an unreadable A1111 weight is text there
        ok = client.post("/plan", json=tiny_spec(prompt="(a man:1.2.3) [a:b:0.5]", prompt_weighting="comfy"))
        assert ok.status_code == 200, ok.text
