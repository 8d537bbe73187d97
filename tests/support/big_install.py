"""An A1111 install the size artists' are: hundreds of LoRAs, checkpoints and VAEs, SDXL files among them, each file
a link to one of the tiny models (tests/support/tiny_families.py for the SDXL ones), for the Models panel at scale.

`build(tiny, families, out)` writes `out/stable-diffusion-webui` and returns it; COUNTS says how many of each.
"""

from __future__ import annotations

from pathlib import Path

# (folder in the install, name pattern, file of the tiny models (or of tiny_families' root with "families:"), count)
FILES = (
    ("models/Lora", "inkStyle{i}.safetensors", "lora/style.safetensors", 600),
    ("models/Stable-diffusion", "toonMix_v{i}.safetensors", "sd15.safetensors", 300),
    ("models/VAE", "kl-f8-anime{i}.safetensors", "vae/tiny-ft-mse.safetensors", 60),
    ("models/Stable-diffusion", "ponyDiffusion_v{i}.safetensors", "families:checkpoints/pony_v6.safetensors", 20),
    ("models/Lora", "xlStyle{i}.safetensors", "families:loras/pony_style_kohya.safetensors", 20),
)
COUNTS = {"lora": 600, "base": 300, "vae": 60, "sdxl": 40}


def build(tiny, families, out) -> Path:
    root = Path(out) / "stable-diffusion-webui"
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "webui.py").write_text("")
    for folder, pattern, target, count in FILES:
        source = Path(families) / target[len("families:") :] if target.startswith("families:") else Path(tiny) / target
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            (root / folder / pattern.format(i=i)).symlink_to(source)
    return root
