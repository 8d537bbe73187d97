"""Write the CLIP ViT-L/14 tokenizer that SD1.5 uses into server/configs/sd15/tokenizer, from openai/CLIP's BPE file.

    python -m tools.make_clip_tokenizer PATH/TO/bpe_simple_vocab_16e6.txt.gz

The BPE file is `clip/bpe_simple_vocab_16e6.txt.gz` of github.com/openai/CLIP (MIT licence, kept beside the output
as LICENSE-CLIP). The vocabulary is built the way openai/CLIP's `SimpleTokenizer` builds it (the 256 byte symbols,
the same with `</w>`, one token per merge, then the two special tokens), and written in the layout transformers'
`CLIPTokenizer` reads, which is the layout of `openai/clip-vit-large-patch14` on the hub. Shipping it lets a
single-file checkpoint load with no network and no Hugging Face cache, as in A1111 and ComfyUI.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "server" / "configs" / "sd15" / "tokenizer"
MERGES = 49152 - 256 - 2  # CLIP's vocabulary is 49408 = 2 * 256 byte symbols + 48894 merges + 2 special tokens
SPECIAL = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}

CLIP_LICENSE = """MIT License

Copyright (c) 2021 OpenAI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def byte_symbols() -> list[str]:
    """GPT-2's reversible byte -> printable character table, in byte order of its construction."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = list(printable), 0
    symbols = [chr(b) for b in printable]
    for b in range(256):
        if b not in codes:
            codes.append(b)
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def make(bpe_gz: Path, out: Path = OUT) -> None:
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")[1 : MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + list(SPECIAL.values())[:2]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False) + "\n")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    config = {**SPECIAL, "pad_token": "<|endoftext|>", "do_lower_case": True, "errors": "replace"}
    config |= {"model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    special = {**SPECIAL, "pad_token": "<|endoftext|>"}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2, sort_keys=True) + "\n")
    (out / "LICENSE-CLIP").write_text(CLIP_LICENSE)


if __name__ == "__main__":
    make(Path(sys.argv[1]))
    print(f"wrote {OUT}")
