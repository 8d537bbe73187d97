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
"""

from __future__ import annotations

import contextlib

import torch

from .prompt_chunks import Chunk, EmbeddingSource, Tokenizer, chunk_prompt
from .prompt_schedule import schedule
from .prompt_tags import prompt_fields, strip_tags


class PromptEncoder:
    def __init__(self, tokenizer, text_encoder, embeddings: EmbeddingSource | None = None, clip_skip: int = 1):
        layers = text_encoder.config.num_hidden_layers
        if not 1 <= clip_skip <= layers:
            raise ValueError(
                f"clip_skip {clip_skip} is more than this checkpoint's text encoder has layers ({layers}); "
                f"use 1 (the last layer) to {layers}"
            )
        self.tok = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer.of(tokenizer)
        self.text_encoder, self.embeddings, self.clip_skip = text_encoder, embeddings, clip_skip
        self.chunk_counts: dict[str, int] = {}  # what each encoded text took, for the manifest
        self.schedules: dict[str, list[tuple[int, str]]] = {}  # each prompt's texts by step (prompt editing)

    def schedule(self, text: str, steps: int) -> list[tuple[int, str]]:
        """The prompt's A1111 schedule over `steps` (prompt_schedule.py), kept for the manifest."""
        self.schedules[text] = schedule(text, steps)
        return self.schedules[text]

    def chunks(self, text: str) -> list[Chunk]:
        return chunk_prompt(text, self.tok, self.embeddings)

    def encode(self, text: str) -> torch.Tensor:
        """(1, 77·chunks, dim) on the text encoder's device and in its dtype."""
        chunks = self.chunks(text)
        self.chunk_counts[text] = len(chunks)
        return torch.cat([self._encode_chunk(c) for c in chunks], dim=1)

    def encode_all(self, texts: list[str]) -> list[torch.Tensor]:
        """Each text encoded, all padded to the largest chunk count with the encoded empty prompt."""
        out = [self.encode(t) for t in texts]
        most = max(e.shape[1] for e in out)
        if all(e.shape[1] == most for e in out):
            return out
        empty = self._encode_chunk(self.chunks("")[0])
        per = empty.shape[1]
        return [torch.cat([e, empty.repeat(1, (most - e.shape[1]) // per, 1)], dim=1) for e in out]

    def _encode_chunk(self, chunk: Chunk) -> torch.Tensor:
        enc = self.text_encoder
        ids = torch.tensor([chunk.tokens], device=enc.device)
        with self._fixes(chunk):
            if self.clip_skip == 1:
                z = enc(ids)[0]
            else:
                hidden = enc(ids, output_hidden_states=True).hidden_states[-self.clip_skip]
                # transformers 5's CLIPTextModel is the text transformer itself; before, it held it as text_model
                z = getattr(enc, "text_model", enc).final_layer_norm(hidden)
        z = z.to(enc.dtype)
        if any(w != 1.0 for w in chunk.weights):
            weights = torch.tensor(chunk.weights, device=z.device, dtype=z.dtype)
            mean = z.mean()
            z = z * weights[None, :, None]
            z = z * (mean / z.mean())
        return z

    def _fixes(self, chunk: Chunk):
        """The chunk's embedding vectors in place of its placeholder tokens' embeddings, for one forward pass."""
        if not chunk.fixes:
            return contextlib.nullcontext()
        vectors = [(at, self.embeddings.vectors(name)) for at, name in chunk.fixes]

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


def prompt_encoder(pipe, config, clip_skip: int) -> PromptEncoder:
    """The encoder of a job: the pipeline's tokenizer and text encoder (with its LoRAs), the configured
    embeddings."""
    from .prompt_embeddings import Embeddings

    tok = Tokenizer.of(pipe.tokenizer)
    embeddings = Embeddings(config, tok, pipe.text_encoder.config.hidden_size, pipe.tokenizer)
    return PromptEncoder(tok, pipe.text_encoder, embeddings, clip_skip)


def prompt_record(spec, text: PromptEncoder) -> dict:
    """What the manifest keeps of the prompts' encoding: clip skip, chunks per prompt field (the most of its texts),
    each edited field's schedule ([end step, text], prompt_schedule.py), embeddings used."""
    chunks, editing = {}, {}
    for field, raw in prompt_fields(spec):
        entries = text.schedules.get(strip_tags(raw))
        if entries is None:  # not encoded: the negative prompt without CFG
            continue
        chunks[field] = max(text.chunk_counts[t] for _, t in entries)
        if len(entries) > 1:
            editing[field] = [[end, t] for end, t in entries]
    out = {
        "clip_skip": text.clip_skip,
        "chunks": chunks,
        "embeddings": text.embeddings.identities() if text.embeddings is not None else [],
    }
    if editing:
        out["prompt_editing"] = editing
    return out
