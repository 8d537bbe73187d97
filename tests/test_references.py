"""IP-Adapter image references: the public file layouts through the real loader, the decoupled cross-attention
against the original's formula, per-frame and per-window weights at the attention level, the real pipeline, and
the API (upload, manifest, field-exact errors)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from helpers import SIZE, png, tiny_spec

from server.engine import references as refs_module
from server.engine.references import ImageReferences, Reference, ReferenceAttnProcessor, cross_attentions
from server.engine.store import ModelStore
from server.engine.windows import ContextWindows
from server.loaders import CheckpointError, ModelConfig, load_image_encoder, load_ip_adapter
from server.loaders.ip_adapter import ENCODER_CONFIG
from tests.support import tiny_ip_adapter
from tests.support.tiny_models import TEXT_DIM, UNET_CHANNELS

FRAMES = 6
IMAGE = np.random.default_rng(3).uniform(0, 255, (40, 52, 3)).astype(np.uint8)  # any size: the encoder resizes
OTHER = np.random.default_rng(4).uniform(0, 255, (64, 48, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def store(tiny_models):
    return ModelStore(ModelConfig.load(tiny_models / "models.toml"), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def pipe(store):
    return store.pipeline("sd15", "v2")


def generate(pipe, references=(), frames=4, **kw):
    return pipe.generate(
        prompt="a puppet",
        negative_prompt="blurry",
        num_frames=frames,
        height=SIZE,
        width=SIZE,
        steps=2,
        generator=torch.Generator().manual_seed(5),
        references=references,
        **kw,
    )


def reference(store, name="ip_adapter", image=IMAGE, **kw) -> Reference:
    adapter, encoder = store.ip_adapter(name)
    return Reference(adapter, encoder, image, **kw)


# --- loading ------------------------------------------------------------------------------------------------------


def test_public_layouts_load_every_key_and_tell_plain_from_plus(store, tiny_models):
    layouts = {
        "ip_adapter": tiny_ip_adapter.plain_layout(UNET_CHANNELS, TEXT_DIM, 24),
        "ip_adapter_plus": tiny_ip_adapter.plus_layout(UNET_CHANNELS, TEXT_DIM, 32, depth=2, heads=1),
    }
    for name, layout in layouts.items():
        st = store.config.get("ip_adapter", name)
        binary = load_ip_adapter(st.source.replace(".safetensors", ".bin"))
        flat = load_ip_adapter(st.source)
        a, b = binary.state_dict(), flat.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # .bin and .safetensors agree
        expected = sum(int(np.prod(s)) for part in layout.values() for s in part.values())
        assert sum(p.numel() for p in flat.parameters()) == expected  # every tensor of the file is used
    plain = load_ip_adapter(store.config.get("ip_adapter", "ip_adapter").source)
    plus = load_ip_adapter(store.config.get("ip_adapter", "ip_adapter_plus").source)
    assert (plain.variant, plain.tokens, plus.variant, plus.tokens) == ("plain", 4, "plus", 16)
    # the encoder as a transformers folder and as a ComfyUI-style single file: the same model
    folder = load_image_encoder(tiny_models / "image_encoder")
    single = load_image_encoder(tiny_models / "clip_vision_tiny.safetensors", tiny_models / "image_encoder")
    pixels = torch.rand(1, 3, 32, 32)
    assert torch.equal(folder(pixels).image_embeds, single(pixels).image_embeds)
    half = load_image_encoder(tiny_models / "image_encoder", dtype=torch.float16)
    assert {p.dtype for p in half.parameters()} == {torch.float16}  # built in the target dtype


def test_bad_files_name_the_problem(tmp_path, tiny_models):
    state = tiny_ip_adapter.random_weights(tiny_ip_adapter.plus_layout(UNET_CHANNELS, TEXT_DIM, 32, 2, heads=1), 0)
    del state["image_proj"]["layers.1.0.to_kv.weight"]
    tiny_ip_adapter.write_safetensors(state, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError, match="broken.safetensors.*IP-Adapter"):
        load_ip_adapter(tmp_path / "broken.safetensors")
    torch.save({"image_proj": {"x": torch.zeros(1)}}, tmp_path / "half.bin")
    with pytest.raises(CheckpointError, match="image_proj and ip_adapter"):
        load_ip_adapter(tmp_path / "half.bin")
    from safetensors.torch import save_file

    save_file({"visual.proj": torch.zeros(2, 2)}, tmp_path / "open_clip.safetensors")
    with pytest.raises(CheckpointError, match="transformers layout"):
        load_image_encoder(tmp_path / "open_clip.safetensors", tiny_models / "image_encoder")


def test_config_links_each_ip_adapter_to_an_image_encoder(tmp_path):
    (tmp_path / "a.toml").write_text('[image_encoder.only]\nsource = "e"\n[ip_adapter.x]\nsource = "x.bin"\n')
    assert ModelConfig.load(tmp_path / "a.toml").get("ip_adapter", "x").image_encoder == "only"
    (tmp_path / "b.toml").write_text('[ip_adapter.x]\nsource = "x.bin"\nimage_encoder = "nope"\n')
    with pytest.raises(ValueError, match=r"\[ip_adapter.x\] needs image_encoder"):
        ModelConfig.load(tmp_path / "b.toml")


def test_full_size_public_layouts(tmp_path):
    """ip-adapter_sd15 and ip-adapter-plus_sd15(-face) at full size, keys and shapes from the original code, written
    as fp16 files in both layouts and loaded by the real loader; their layers fit the full-size motion UNet's
    cross-attentions in the original's numbering; the image encoder config is ViT-H/14."""
    from accelerate import init_empty_weights
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from fullsize import materialize, meta_model
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from server.loaders import CONFIGS

    counts = {}
    for name, layout in (
        ("plain", tiny_ip_adapter.plain_layout()),
        ("plus", tiny_ip_adapter.plus_layout()),
    ):
        state = {s: materialize({k: torch.empty(v, device="meta") for k, v in d.items()}) for s, d in layout.items()}
        path = tmp_path / f"{name}.{'bin' if name == 'plain' else 'safetensors'}"
        (tiny_ip_adapter.write_bin if name == "plain" else tiny_ip_adapter.write_safetensors)(state, path)
        model = load_ip_adapter(path, dtype=torch.float16)
        counts[name] = sum(p.numel() for p in model.parameters())
        assert counts[name] == sum(int(np.prod(s)) for d in layout.values() for s in d.values())
        assert model.variant == name and model.tokens == (4 if name == "plain" else 16)
        path.unlink()
    # ImageProjModel(768, 1024, 4): 3,148,800 + 1,536; 16 × (to_k_ip + to_v_ip) over widths summing to 12,480:
    # 19,169,280. Resampler(768, depth 4, 12 heads of 64, 16 queries, 1280 in, ff ×4): 29,918,208.
    assert counts == {"plain": 22_319_616, "plus": 49_087_488}
    unet2d = meta_model(UNet2DConditionModel, CONFIGS / "sd15", "unet")
    original_order = [k[: -len(".processor")] for k in unet2d.attn_processors if k.endswith("attn2.processor")]
    assert [n for n, _ in cross_attentions(unet2d)] == original_order  # the original numbers them in this order
    with init_empty_weights():
        adapter = meta_model(MotionAdapter, CONFIGS / "motion_adapter_v2")
        motion = UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=False)
    widths = [a.to_k.out_features for _, a in cross_attentions(motion)]
    assert widths == tiny_ip_adapter.cross_attention_widths() and len(widths) == 16
    config = CLIPVisionConfig.from_pretrained(ENCODER_CONFIG)
    assert (config.hidden_size, config.num_hidden_layers, config.patch_size, config.image_size) == (1280, 32, 14, 224)
    assert config.projection_dim == 1024 and config.intermediate_size == 5120 and config.num_attention_heads == 16
    with torch.device("meta"):
        vit = CLIPVisionModelWithProjection(config)
    h, layers, patches = 1280, 32, (224 // 14) ** 2 + 1
    expected = h + 3 * 14 * 14 * h + patches * h + 2 * h  # class token, patch conv, positions, pre-norm
    expected += layers * (4 * (h * h + h) + 2 * 2 * h + (h * 5120 + 5120) + (5120 * h + h))
    expected += 2 * h + h * 1024  # post-norm, visual projection
    assert sum(p.numel() for p in vit.parameters()) == expected == 632_076_800


# --- the attention ------------------------------------------------------------------------------------------------


def original_ip_attention(attn, hidden, text, image, layer, scale):
    """tencent-ailab/IP-Adapter's IPAttnProcessor, written out for one scale over the whole batch."""
    query = attn.head_to_batch_dim(attn.to_q(hidden))
    key, value = attn.head_to_batch_dim(attn.to_k(text)), attn.head_to_batch_dim(attn.to_v(text))
    out = attn.batch_to_head_dim(torch.bmm(attn.get_attention_scores(query, key, None), value))
    ip_key = attn.head_to_batch_dim(layer.to_k_ip(image))
    ip_value = attn.head_to_batch_dim(layer.to_v_ip(image))
    ip = attn.batch_to_head_dim(torch.bmm(attn.get_attention_scores(query, ip_key, None), ip_value))
    out = attn.to_out[1](attn.to_out[0](out + scale * ip))
    return out / attn.rescale_output_factor


@pytest.mark.parametrize("name", ["ip_adapter", "ip_adapter_plus"])
def test_attention_matches_the_original_formula(store, pipe, name):
    r = reference(store, name, weight=0.7)
    owner = ImageReferences([r], 4, 77, "cpu", torch.float32)
    text = torch.randn(8, 77, TEXT_DIM)  # guidance: 4 unconditional rows, then the 4 frames' conditional ones
    states = owner.extend(text, [0, 1, 2, 3], 0, 2)
    j = 5
    attn = cross_attentions(pipe.unet)[j][1]
    hidden = torch.randn(8, 16, attn.to_q.in_features)
    got = ReferenceAttnProcessor(owner, [r.adapter.layers[j]], attn.processor)(attn, hidden, states)
    cond, uncond = owner.tokens[0]
    image = torch.cat([uncond.expand(4, -1, -1), cond.expand(4, -1, -1)])
    want = original_ip_attention(attn, hidden, text, image, r.adapter.layers[j], 0.7)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the unconditional tokens are the original's: plain projects zero embeds, plus encodes a zero image
    pixels = refs_module.clip_pixels(IMAGE, r.encoder)
    if name == "ip_adapter":
        zero = r.adapter.image_proj(torch.zeros_like(r.encoder(pixels).image_embeds))
    else:
        zero = r.adapter.image_proj(r.encoder(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2])
    torch.testing.assert_close(uncond, zero[0])


def spy_scales(monkeypatch) -> list[tuple[bool, list[float]]]:
    """Record, for every call of a reference processor, whether any reference acted and the per-row weights."""
    calls = []
    original = ReferenceAttnProcessor.__call__

    def call(self, attn, hidden_states, encoder_hidden_states=None, *args, **kwargs):
        weights = refs_module.row_scales(encoder_hidden_states, len(self.layers))[:, 0].tolist()
        calls.append((any(self.owner.active), weights))
        return original(self, attn, hidden_states, encoder_hidden_states, *args, **kwargs)

    monkeypatch.setattr(ReferenceAttnProcessor, "__call__", call)
    return calls


@pytest.mark.parametrize("mode", ["unet", "temporal"])
def test_each_row_gets_its_frames_weight_in_every_window(store, pipe, monkeypatch, mode):
    """A reference on frames 4..5 of 6, windows [0..3] [2..5] (length 4, overlap 2): in mode "unet" the first
    window's predictions run no image attention and the second's rows carry the weight exactly on frames 4, 5 (both
    halves of guidance); in mode "temporal" the frame chunks carry their rows' weights."""
    calls = spy_scales(monkeypatch)
    r = reference(store, weight=0.5, first=4, last=5)
    context = ContextWindows(length=4, overlap=2, mode=mode, chunk=2)
    generate(pipe, [r], frames=FRAMES, context=context)
    per_frame = [0.0, 0.0, 0.0, 0.0, 0.5, 0.5]
    if mode == "unet":
        windows = [[0, 1, 2, 3], [2, 3, 4, 5]]
        expected = {tuple([per_frame[f] for f in w] * 2) for w in windows}
        assert {tuple(w) for _, w in calls} == expected
        assert all(active == any(w) for active, w in calls)  # the first window runs the plain processor
        assert sum(active for active, _ in calls) == 2 * 16  # 2 steps × 16 cross-attentions, second window only
    else:
        rows = per_frame * 2  # unconditional frames then conditional ones, chunks of 2 × 2 rows
        chunks = {tuple(rows[s : s + 4]) for s in range(0, len(rows), 4)}
        first_step = calls[: 16 * 3]  # every cross-attention, three chunks each
        assert {tuple(w) for _, w in first_step} == chunks
        # from the second step on, a deeper layer takes larger chunks (engine/temporal_windows.py): still whole
        # chunks of the rows, each row once per cross-attention and step
        assert all(any(w == rows[s : s + len(w)] for s in range(0, len(rows), len(w))) for _, w in calls)
        assert sum(len(w) for _, w in calls) == 2 * 16 * len(rows)


def test_step_range_follows_the_controlnet_rule(store, pipe, monkeypatch):
    calls = spy_scales(monkeypatch)
    generate(pipe, [reference(store, weight=0.8, start=0.5, end=1.0)])
    assert [active for active, _ in calls] == [False] * 16 + [True] * 16  # step 0 of 2 off, step 1 on


# --- the pipeline -------------------------------------------------------------------------------------------------


def test_weight_zero_is_bit_identical_and_weights_change_the_frames(store, pipe):
    plain = generate(pipe)
    assert np.array_equal(generate(pipe, [reference(store, weight=0.0)]), plain)
    assert np.array_equal(generate(pipe), plain)  # the processors are gone again
    one = generate(pipe, [reference(store, weight=1.0)])
    assert np.abs(one.astype(int) - plain).max() > 10
    two = generate(pipe, [reference(store, weight=1.0), reference(store, "ip_adapter_plus", OTHER, weight=0.6)])
    assert np.abs(two.astype(int) - one).max() > 10
    other_image = generate(pipe, [reference(store, image=OTHER, weight=1.0)])
    assert np.abs(other_image.astype(int) - one).max() > 10  # the image itself matters, not only the weight


def test_references_with_controlnets_sparsectrl_prompt_travel_and_windows(store, pipe):
    """The ControlNet and SparseCtrl see the text tokens only (a wider context would not fit their attention); with
    temporal windows the references change the frames; SparseCtrl keyframes, prompt travel and windows of mode
    "unet" run with two references in the same loop."""
    from server.engine.conditioning import Control, Keyframes

    guides = torch.rand(FRAMES, 3, SIZE, SIZE)
    controls = [Control(store.controlnet("depth"), guides, 0.8)]
    context = ContextWindows(length=4, overlap=2, mode="temporal")
    without = generate(pipe, frames=FRAMES, controls=controls, context=context)
    with_ref = generate(pipe, [reference(store, "ip_adapter_plus")], frames=FRAMES, controls=controls, context=context)
    assert with_ref.shape == without.shape and np.abs(with_ref.astype(int) - without).max() > 10
    keyframes = Keyframes(store.sparsectrl("rgb"), guides[[0, 5]], [0, 5])
    both = [reference(store, weight=0.7, last=2), reference(store, "ip_adapter_plus", OTHER, first=3)]
    frames = generate(
        pipe,
        both,
        frames=FRAMES,
        controls=controls,
        keyframes=keyframes,
        context=ContextWindows(length=4, overlap=2, mode="unet"),
        prompt_keys=[(0, "a red puppet"), (5, "a blue puppet")],
    )
    assert frames.shape == (FRAMES, SIZE, SIZE, 3)


# --- the API ------------------------------------------------------------------------------------------------------


def test_server_job_with_references_records_them(tiny_server):
    import httpx
    from conftest import TOKEN
    from helpers import multipart, read_events

    spec = tiny_spec(
        references=[
            {"model": "ip_adapter_plus", "weight": 0.8, "first": 1, "last": 2},
            {"weight": 0.5, "start": 0.5},  # model: the default name "ip_adapter"
        ]
    )
    images = [png(IMAGE), png(OTHER)]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=tiny_server.url, headers=headers, timeout=120) as client:
        models = client.get("/models").json()
        assert {"ip_adapter", "ip_adapter_plus"} <= {m["name"] for m in models["ip_adapter"]}
        assert {m["name"] for m in models["image_encoder"]} == {"vit_h", "vit_h_single"}
        plan = client.post("/plan", json=spec).json()
        assert [r["model"] for r in plan["references"]] == ["ip_adapter_plus", "ip_adapter"]
        data, files = multipart(spec, reference=images)
        r = client.post("/jobs", data=data, files=files)
        assert r.status_code == 202, r.text
        job = r.json()["id"]
        with client.stream("GET", f"/jobs/{job}/events") as events:
            kinds = [k for _, k, _ in read_events(events)]
        assert kinds[-1] == "done" and kinds.count("frame") == 4
        manifest = client.get(f"/jobs/{job}/manifest").json()
    recorded = manifest["plan"]["references"]
    assert [(m["model"], m["weight"], m["start"], m["end"], m["first"], m["last"]) for m in recorded] == [
        ("ip_adapter_plus", 0.8, 0.0, 1.0, 1, 2),
        ("ip_adapter", 0.5, 0.5, 1.0, 0, 3),
    ]
    assert [m["image_sha256"] for m in recorded] == [hashlib.sha256(i).hexdigest() for i in images]
    assert recorded[0]["image_encoder"]["name"] == "vit_h" and "sha256" in recorded[0]["ip_adapter"]
    assert "sha256_pending" not in recorded[0]["ip_adapter"]


def test_bad_references_are_field_exact_422s(tiny_server):
    import httpx
    from conftest import TOKEN
    from helpers import multipart

    headers = {"Authorization": f"Bearer {TOKEN}"}

    def fields(spec, **parts):
        if parts:
            data, files = multipart(spec, **parts)
            r = client.post("/jobs", data=data, files=files)
        else:
            r = client.post("/jobs", json=spec)
        assert r.status_code == 422, r.text
        return {e["field"]: e["message"] for e in r.json()["detail"]}

    with httpx.Client(base_url=tiny_server.url, headers=headers, timeout=60) as client:
        unknown = fields(tiny_spec(references=[{"model": "nope"}]), reference=[png(IMAGE)])
        assert "references[0].model" in unknown and "ip_adapter_plus" in unknown["references[0].model"]
        assert "reference" in fields(tiny_spec(references=[{}]))  # no image sent
        assert "reference" in fields(tiny_spec(), reference=[png(IMAGE)])  # an image without a reference
        assert "reference[0]" in fields(tiny_spec(references=[{}]), reference=[b"GIF89a not a png"])
        assert "references[0].last" in fields(tiny_spec(references=[{"first": 2, "last": 1}]), reference=[png(IMAGE)])


def test_missing_files_are_the_409_other_kinds_give(tmp_path):
    from fastapi import HTTPException

    from server.api.spec_checks import check_spec
    from server.protocol import parse_spec

    (tmp_path / "m.toml").write_text(
        "[base.sd15]\nsource = 'b'\n[motion_module.v2]\nsource = 'm'\n"
        "[image_encoder.vit_h]\nsource = 'enc'\n[ip_adapter.ip_adapter]\nsource = 'gone.bin'\n"
    )
    for part in ("b", "m", "enc"):
        (tmp_path / part).mkdir()
    (tmp_path / "m" / "config.json").write_text('{"motion_max_seq_length": 32}')
    spec = parse_spec({**tiny_spec(), "references": [{}]})
    with pytest.raises(HTTPException) as e:
        check_spec(ModelConfig.load(tmp_path / "m.toml"), spec)
    assert e.value.status_code == 409 and e.value.detail["kind"] == "ip_adapter" and e.value.detail["missing"]
