"""Which accelerator the server runs on: CUDA, then Apple's MPS, then the CPU; half precision where it is fast.

MPS is chosen only on Apple silicon with a torch build that has it; that path is not run by the tests (no Mac in
CI), so it stays this one explicit branch.
"""

from __future__ import annotations


def choose(torch, device: str | None = None, dtype: str | None = None) -> tuple[str, str, str]:
    """(device, dtype name, why) from what torch reports, unless the user named them."""
    if device:
        why = "set with --device"
    elif torch.cuda.is_available():
        device, why = "cuda", f"CUDA GPU {torch.cuda.get_device_name(0)}"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, why = "mps", "Apple GPU (Metal)"
    else:
        device, why = "cpu", "no CUDA or Metal GPU that this torch build can use"
    if dtype is None:
        dtype = "float16" if device.startswith(("cuda", "mps")) else "float32"
    return device, dtype, why
