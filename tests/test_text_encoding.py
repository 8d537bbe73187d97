"""Prompts to text embeddings on the tiny CLIP, against independent computations: diffusers' encode_prompt (plain
prompts), A1111's emphasis formula, clip skip as a text encoder cut after its penultimate layer, embeddings as
diffusers' textual-inversion loading adds them (new token rows); the public embedding files; and the pipeline with
long prompts, embeddings and clip skip next to ControlNets, SparseCtrl, IP-Adapter references, prompt travel and
context windows."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from helpers import SIZE
from transformers import CLIPTextModel

from server.engine.conditioning import Control, Keyframes
from server.engine.references import Reference, clip_pixels
from server.engine.text_encoding import PromptEncoder, prompt_encoder
from server.engine.windows import ContextWindows
from server.loaders import CheckpointError, ModelConfig
from server.loaders.embeddings import load_embedding
from tests.support import tiny_embeddings
from tests.support.tiny_models import TEXT_DIM

LONG = "a man walking in the city at night, " * 10  # 90 tokens on the tiny tokenizer: two chunks


def encoder(pipe, store, clip_skip=1):
    return prompt_encoder(pipe, store.config, clip_skip)


def test_a_plain_prompt_is_what_diffusers_encodes_bit_for_bit(pipe, store):
    text = encoder(pipe, store)
    positive, negative = text.encode_all(["a man walking in the city", "blurry"])
    want_pos, want_neg = pipe.encode_prompt("a man walking in the city", "cpu", 1, True, "blurry")
    assert torch.equal(positive, want_pos) and torch.equal(negative, want_neg)


def test_a_weighted_token_changes_as_a1111_defines(pipe, store):
    text = encoder(pipe, store)
    plain = text.encode("a man walking")
    weighted = text.encode("a (man:1.5) [walking]")
    assert text.chunks("a (man:1.5) [walking]")[0].tokens == text.chunks("a man walking")[0].tokens
    # A1111's "Original" emphasis: scale each token's hidden state by its weight, then restore the mean
    w = torch.ones(77)
    w[2], w[3] = 1.5, 1 / 1.1
    scaled = plain * w[None, :, None]
    want = scaled * (plain.mean() / scaled.mean())
    assert torch.allclose(weighted, want, atol=1e-6, rtol=0)
    assert weighted.mean().item() == pytest.approx(plain.mean().item(), abs=1e-6)


def test_long_prompts_take_chunks_of_77_and_nothing_is_cut(pipe, store):
    text = encoder(pipe, store)
    chunks = text.chunks(LONG)
    assert len(chunks) == 2
    long = text.encode(LONG)
    assert long.shape == (1, 154, TEXT_DIM)
    for k, chunk in enumerate(chunks):  # each chunk is the text encoder's output for its 77 tokens alone
        alone = pipe.text_encoder(torch.tensor([chunk.tokens]))[0]
        assert torch.equal(long[:, 77 * k : 77 * (k + 1)], alone)
    # diffusers keeps the first 75 tokens and drops the rest; here the first chunk ends at the last comma
    cut = pipe.encode_prompt(LONG, "cpu", 1, False)[0]
    assert not torch.equal(long[:, :77], cut)


def test_prompts_encoded_together_are_padded_with_the_empty_prompt(pipe, store):
    text = encoder(pipe, store)
    short, long, neg = text.encode_all(["a man", LONG, "blurry"])
    assert short.shape == long.shape == neg.shape == (1, 154, TEXT_DIM)
    empty = text.encode("")
    assert torch.equal(short[:, :77], text.encode("a man")) and torch.equal(short[:, 77:], empty)
    assert torch.equal(neg[:, 77:], empty) and text.chunk_counts[LONG] == 2


def test_clip_skip_2_is_the_penultimate_layer_through_the_final_norm(pipe, store):
    enc = pipe.text_encoder
    layers = enc.config.num_hidden_layers
    # an independent computation: the same weights in a text encoder one layer shorter; its output is the
    # penultimate layer's hidden states through the final layer norm
    config = copy.deepcopy(enc.config)
    config.num_hidden_layers = layers - 1
    shorter = CLIPTextModel(config).eval()
    missing, unexpected = shorter.load_state_dict(enc.state_dict(), strict=False)
    assert not missing and unexpected and all(f"layers.{layers - 1}." in k for k in unexpected)
    ids = torch.tensor([encoder(pipe, store).chunks("a man walking")[0].tokens])
    skipped = encoder(pipe, store, clip_skip=2).encode("a man walking")
    assert torch.allclose(skipped, shorter(ids)[0], atol=1e-6, rtol=0)
    assert not torch.allclose(skipped, encoder(pipe, store).encode("a man walking"), atol=1e-3)
    with pytest.raises(ValueError, match=f"clip_skip {layers + 1} is more than"):
        PromptEncoder(pipe.tokenizer, enc, clip_skip=layers + 1)


def test_an_embedding_is_what_new_token_rows_give(pipe, store, tiny_models):
    text = encoder(pipe, store)
    got = text.encode("a man marionette_style walking")
    explicit = encoder(pipe, store).encode("a man embedding:marionette_style.pt walking")
    assert torch.equal(got, explicit) and text.embeddings.used == ["marionette_style"]
    # diffusers' way of loading textual inversion: new rows in the token embedding, new ids in the prompt
    vectors = tiny_embeddings.vectors("marionette_style", TEXT_DIM)
    grown = copy.deepcopy(pipe.text_encoder)
    first = grown.config.vocab_size
    grown.resize_token_embeddings(first + 3)
    with torch.no_grad():
        grown.get_input_embeddings().weight[first:] = vectors
    tok = pipe.tokenizer
    words = [tok.bos_token_id] + tok(["a man"], add_special_tokens=False)["input_ids"][0]
    words += [first, first + 1, first + 2] + tok(["walking"], add_special_tokens=False)["input_ids"][0]
    ids = words + [tok.eos_token_id] * (77 - len(words))
    assert torch.allclose(got, grown(torch.tensor([ids]))[0], atol=1e-6, rtol=0)
    record = text.embeddings.identities()
    assert record[0]["name"] == "marionette_style" and record[0]["vectors"] == 3
    assert list(record[0]["sha256"]) == ["marionette_style.pt"]


def test_public_embedding_files_load(tiny_models, tmp_path):
    folder = tiny_models / "embeddings"
    for name, file in (
        ("EasyNegative", "EasyNegative.safetensors"),
        ("marionette_style", "marionette_style.pt"),
        ("concept", "concept.bin"),
    ):
        assert torch.equal(load_embedding(folder / file), tiny_embeddings.vectors(name, TEXT_DIM))
    from safetensors.torch import save_file

    save_file({"clip_l": torch.ones(2, 768), "clip_g": torch.ones(2, 1280)}, tmp_path / "xl.safetensors")
    assert load_embedding(tmp_path / "xl.safetensors").shape == (2, 768)  # SDXL files: the CLIP-L half
    # an old A1111 file that pickled a ParameterDict needs more than weights_only: refused, saying what to do
    torch.save({"string_to_param": torch.nn.ParameterDict({"*": torch.ones(2, 8)})}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_embedding(tmp_path / "old.pt")
    save_file({"a": torch.ones(2, 8), "b": torch.ones(2, 8)}, tmp_path / "two.safetensors")
    with pytest.raises(CheckpointError, match="not a textual-inversion embedding"):
        load_embedding(tmp_path / "two.safetensors")


def test_embeddings_folders_and_a_wrong_size(tmp_path, pipe):
    comfy = tmp_path / "ComfyUI" / "models" / "embeddings"
    comfy.mkdir(parents=True)
    from safetensors.torch import save_file

    save_file({"emb_params": torch.ones(2, 768)}, comfy / "sd15_sized.safetensors")
    (tmp_path / "m.toml").write_text('[folders]\nembedding = ["ComfyUI/models/embeddings"]\n')
    config = ModelConfig.load(tmp_path / "m.toml")
    assert config.names("embedding") == ["sd15_sized"]
    text = prompt_encoder(pipe, config, 1)
    with pytest.raises(CheckpointError, match=f"768 values; this checkpoint's text encoder takes {TEXT_DIM}"):
        text.encode("embedding:sd15_sized")


def test_embeddings_are_kept_across_jobs_until_their_file_changes(tmp_path, pipe):
    """Each job's encoder tokenizes the configured names once per tokenizer and reads a file once per version
    (path, size, mtime): the next job reuses both; an edited file is read again."""
    from safetensors.torch import save_file

    file = tmp_path / "embeddings" / "kept.safetensors"
    file.parent.mkdir()
    save_file({"emb_params": torch.ones(2, TEXT_DIM)}, file)
    (tmp_path / "m.toml").write_text('[folders]\nembedding = ["embeddings"]\n')
    config = ModelConfig.load(tmp_path / "m.toml")
    first, second = (prompt_encoder(pipe, config, 1) for _ in range(2))
    assert first.embeddings._by_first is second.embeddings._by_first  # tokenized once
    assert second.embeddings.vectors("kept") is first.embeddings.vectors("kept")  # read once
    before = first.encode("a man, kept")
    save_file({"emb_params": torch.full((2, TEXT_DIM), 3.0)}, file)
    os.utime(file, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns + 10**9))  # a later mtime, whatever the clock
    changed = prompt_encoder(pipe, config, 1)
    assert torch.equal(changed.embeddings.vectors("kept"), torch.full((2, TEXT_DIM), 3.0))
    assert not torch.equal(changed.encode("a man, kept"), before)
    assert torch.equal(prompt_encoder(pipe, config, 1).encode("a man, kept"), changed.encode("a man, kept"))


def test_long_weighted_prompts_run_with_every_conditioning(pipe, store):
    """A two-chunk weighted prompt with an embedding and clip skip 2, a one-chunk negative, prompt travel between
    keys of one and two chunks, CFG, a ControlNet, SparseCtrl keyframes and an IP-Adapter reference, in windows of
    both modes: every prediction sees 154 text tokens (the references' image tokens after them)."""
    frames = 6
    guides = torch.rand(frames, 3, SIZE, SIZE)
    adapter, image_encoder = store.ip_adapter("ip_adapter")
    image = np.random.default_rng(1).uniform(0, 255, (32, 32, 3)).astype(np.uint8)
    widths = []
    hook = pipe.unet.register_forward_pre_hook(
        lambda m, args, kwargs: widths.append(kwargs["encoder_hidden_states"].shape[1]), with_kwargs=True
    )
    seen = []
    control_hook = store.controlnet("depth").register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["encoder_hidden_states"].shape[1]), with_kwargs=True
    )
    try:
        for mode in ("unet", "temporal"):
            text = encoder(pipe, store, clip_skip=2)
            out = pipe.generate(
                prompt="unused",
                negative_prompt="EasyNegative, blurry",
                num_frames=frames,
                height=SIZE,
                width=SIZE,
                steps=2,
                guidance=7.5,
                generator=torch.Generator().manual_seed(2),
                controls=[Control(store.controlnet("depth"), guides, 0.8)],
                keyframes=Keyframes(store.sparsectrl("rgb"), guides[[0, 5]], [0, 5]),
                context=ContextWindows(length=4, overlap=2, mode=mode),
                prompt_keys=[(0, "(a man:1.2) walking"), (5, LONG + "marionette_style")],
                references=[Reference(adapter, image_encoder, image, 0.6)],
                text=text,
            )
            assert out.shape == (frames, SIZE, SIZE, 3)
            assert text.chunk_counts == {
                "(a man:1.2) walking": 1,
                LONG + "marionette_style": 2,
                "EasyNegative, blurry": 1,
            }
            assert text.embeddings.used == ["marionette_style", "EasyNegative"]
    finally:
        hook.remove()
        control_hook.remove()
    image_tokens = adapter.image_tokens(image_encoder, clip_pixels(image, image_encoder))[0].shape[1]
    assert set(widths) == {154 + image_tokens + 1}  # text, the reference's tokens, its scale token
    assert set(seen) == {154}  # the ControlNet sees the text tokens only
