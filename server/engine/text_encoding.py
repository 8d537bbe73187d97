"""Prompts to text embeddings as A1111 makes them (modules/sd_hijack_clip.py, sd_emphasis.py "Original").

Each chunk of a prompt (prompt_chunks.py) is encoded on its own, 77 tokens through the CLIP text encoder:

- embeddings: their vectors replace the token embeddings at their positions, before the transformer (A1111's
  EmbeddingsWithFixes; here a forward hook on the token embedding layer, so the text encoder's own code runs);
- clip skip N (A1111's meaning): N = 1 the last layer's output, N > 1 the hidden states N layers from the end
  passed through the final layer norm;
- emphasis: the hidden states multiplied by each token's weight, then scaled so their mean is what it was.

The chunks are laid end to end (77·k tokens). Prompts encoded together (positive, negative, prompt-travel keys)
are padded to the same number of chunks with the encoded empty prompt, as A1111 pads cond and uncond. A prompt of
one chunk with every weight 1 and clip skip 1 is bit for bit what diffusers' `encode_prompt` gives.

With `weighting="comfy"` the prompt is read and weighted as ComfyUI's CLIP Text Encode does (comfy_prompt.py;
comfy/sd1_clip.py `ClipTokenWeightEncoder.encode_token_weights`): no prompt editing, each weighted token's output
moved from the EMPTY prompt's output at its position, z = (z − z_empty)·w + z_empty, in float32, no mean restored;
prompts of different chunk counts are repeated whole to a common multiple, as ComfyUI batches cond and uncond.
"""

from __future__ import annotations

import contextlib
import math

import torch

from .comfy_prompt import comfy_chunks
from .prompt_chunks import Chunk, EmbeddingSource, Tokenizer, chunk_prompt
from .prompt_schedule import schedule
from .prompt_tags import prompt_fields, strip_tags


class PromptEncoder:
    def __init__(
        self,
        tokenizer,
        text_encoder,
        embeddings: EmbeddingSource | None = None,
        clip_skip: int = 1,
        weighting: str = "a1111",
    ):
        layers = text_encoder.config.num_hidden_layers
        if not 1 <= clip_skip <= layers:
            raise ValueError(
                f"clip_skip {clip_skip} is more than this checkpoint's text encoder has layers ({layers}); "
                f"use 1 (the last layer) to {layers}"
            )
        self.tok = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer.of(tokenizer)
        self.text_encoder, self.embeddings, self.clip_skip = text_encoder, embeddings, clip_skip
        self.comfy = weighting == "comfy"
        self.chunk_counts: dict[str, int] = {}  # what each encoded text took, for the manifest
        self.schedules: dict[str, list[tuple[int, str]]] = {}  # each prompt's texts by step (prompt editing)

    def schedule(self, text: str, steps: int) -> list[tuple[int, str]]:
        """The prompt's A1111 schedule over `steps` (prompt_schedule.py), kept for the manifest; ComfyUI has no
        prompt editing: one text throughout."""
        self.schedules[text] = [(steps, text)] if self.comfy else schedule(text, steps)
        return self.schedules[text]

    @property
    def weighting(self) -> str:
        return "comfy" if self.comfy else "a1111"

    def chunks(self, text: str) -> list[Chunk]:
        return (comfy_chunks if self.comfy else chunk_prompt)(text, self.tok, self.embeddings)

    def encode(self, text: str) -> torch.Tensor:
        """(1, 77·chunks, dim) on the text encoder's device and in its dtype."""
        chunks = self.chunks(text)
        self.chunk_counts[text] = len(chunks)
        if self.comfy:
            return torch.cat(self._comfy(chunks), dim=1)
        return torch.cat([self._encode_chunk(c) for c in chunks], dim=1)

    def encode_all(self, texts: list[str]) -> list[torch.Tensor]:
        """Each text encoded, all padded to the largest chunk count with the encoded empty prompt (ComfyUI: each
        repeated to the least common multiple of the chunk counts)."""
        out = [self.encode(t) for t in texts]
        most = max(e.shape[1] for e in out)
        if all(e.shape[1] == most for e in out):
            return out
        if self.comfy:
            common = math.lcm(*(e.shape[1] for e in out))
            return [e.repeat(1, common // e.shape[1], 1) for e in out]
        empty = self._encode_chunk(self.chunks("")[0])
        per = empty.shape[1]
        return [torch.cat([e, empty.repeat(1, (most - e.shape[1]) // per, 1)], dim=1) for e in out]

    def _comfy(self, chunks: list[Chunk]) -> list[torch.Tensor]:
        """ComfyUI's weighting: a weighted token's output lerped from the empty prompt's output at its position."""
        out = [self._hidden(c) for c in chunks]
        if all(w == 1.0 for c in chunks for w in c.weights):
            return out
        empty = self._hidden(comfy_chunks("", self.tok)[0]).float()
        weighted = []
        for chunk, z in zip(chunks, out):
            z = z.float()
            weights = torch.tensor(chunk.weights, device=z.device, dtype=torch.float32)[None, :, None]
            lerped = (z - empty) * weights + empty
            weighted.append(torch.where(weights != 1.0, lerped, z).to(self.text_encoder.dtype))
        return weighted

    def _encode_chunk(self, chunk: Chunk) -> torch.Tensor:
        z = self._hidden(chunk)
        if any(w != 1.0 for w in chunk.weights):
            weights = torch.tensor(chunk.weights, device=z.device, dtype=z.dtype)
            mean = z.mean()
            z = z * weights[None, :, None]
            z = z * (mean / z.mean())
        return z

    def _hidden(self, chunk: Chunk) -> torch.Tensor:
        """The chunk's hidden states at the clip skip layer, (1, 77, dim) in the text encoder's dtype."""
        enc = self.text_encoder
        ids = torch.tensor([chunk.tokens], device=enc.device)
        with self._fixes(chunk):
            if self.clip_skip == 1:
                z = enc(ids)[0]
            else:
                hidden = enc(ids, output_hidden_states=True).hidden_states[-self.clip_skip]
                # transformers 5's CLIPTextModel is the text transformer itself; before, it held it as text_model
                z = getattr(enc, "text_model", enc).final_layer_norm(hidden)
        return z.to(enc.dtype)

    def _fixes(self, chunk: Chunk):
        """The chunk's embedding vectors in place of its placeholder tokens' embeddings, for one forward pass."""
        if not chunk.fixes:
            return contextlib.nullcontext()
        # a fix is (position, name) for all of an embedding's vectors, or (position, name, first, count) for some
        vectors = []
        for at, name, *part in chunk.fixes:
            v = self.embeddings.vectors(name)
            vectors.append((at, v[part[0] : part[0] + part[1]] if part else v))

        def replace(module, args, output):
            output = output.clone()
            for at, v in vectors:
                output[:, at : at + v.shape[0]] = v.to(output.device, output.dtype)
            return output

        layer = self.text_encoder.get_input_embeddings()
        return _Hooked(layer.register_forward_hook(replace))


class _Hooked(contextlib.AbstractContextManager):
    def __init__(self, handle):
        self.handle = handle

    def __exit__(self, *exc):
        self.handle.remove()


def prompt_encoder(pipe, config, clip_skip: int, weighting: str = "a1111") -> PromptEncoder:
    """The encoder of a job: the pipeline's tokenizer and text encoder (with its LoRAs), the configured
    embeddings, the spec's prompt weighting."""
    from .prompt_embeddings import Embeddings

    tok = Tokenizer.of(pipe.tokenizer)
    embeddings = Embeddings(config, tok, pipe.text_encoder.config.hidden_size, pipe.tokenizer)
    return PromptEncoder(tok, pipe.text_encoder, embeddings, clip_skip, weighting)


def prompt_record(spec, text: PromptEncoder) -> dict:
    """What the manifest keeps of the prompts' encoding: the weighting (a1111 or comfy), clip skip, chunks per
    prompt field (the most of its texts), each edited field's schedule ([end step, text], prompt_schedule.py),
    embeddings used."""
    chunks, editing = {}, {}
    for field, raw in prompt_fields(spec):
        entries = text.schedules.get(strip_tags(raw))
        if entries is None:  # not encoded: the negative prompt without CFG
            continue
        chunks[field] = max(text.chunk_counts[t] for _, t in entries)
        if len(entries) > 1:
            editing[field] = [[end, t] for end, t in entries]
    out = {
        "weighting": text.weighting,
        "clip_skip": text.clip_skip,
        "chunks": chunks,
        "embeddings": text.embeddings.identities() if text.embeddings is not None else [],
    }
    if editing:
        out["prompt_editing"] = editing
    return out
