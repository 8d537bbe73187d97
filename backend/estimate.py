"""What a job will cost and whether it can run, from the settings alone (no bpy, no server call).

The panel shows `estimate(...)` under Generate and Generate refuses a job with `refusals` before anything renders
or any folder is made. The motion module's version and frame limit come from the model catalogue (None: the
server was never reached; then only what is certain is said).
"""

from __future__ import annotations

# Above these the tiny-to-consumer GPUs the artists use slow down sharply or run out of memory (SD1.5 motion modules
# were trained at 512 px and 16 frames).
COMFORT_LONG_SIDE = 768
COMFORT_FRAMES = 128


def generation_size(long_side: int, width: int, height: int, pixel_aspect: float = 1.0) -> tuple[int, int]:
    """(w, h): `long_side` on the longer side, the other from the scene's aspect, both multiples of 8 (≥ 8)."""
    long_side = max(8, long_side // 8 * 8)
    w, h = width * pixel_aspect, float(height)
    if w >= h:
        return long_side, max(8, round(long_side * h / w / 8) * 8)
    return max(8, round(long_side * w / h / 8) * 8), long_side


def windows(frames: int, context: dict | None) -> int:
    """How many context windows the server runs (server/engine/windows.py's count; 1 when the clip fits one)."""
    if not context or (frames <= context["length"] and not context["loop"]):
        return 1
    length = min(context["length"], frames)
    stride = max(1, length - min(context["overlap"], length - 1))
    if context["loop"]:
        return -(-frames // stride)
    starts = len(range(0, frames - length + 1, stride))
    return starts + (0 if (starts - 1) * stride == frames - length else 1)


def estimate(snap: dict, module: dict | None) -> dict:
    """{"frames", "steps", "windows", "work" (frame-steps computed), "lines", "warnings", "refusals"}."""
    frames = snap["frame_end"] - snap["frame_start"] + 1
    context = snap.get("context")
    max_frames = (module or {}).get("max_frames")
    version = (module or {}).get("version")
    refusals, warnings = [], []
    if frames < 2:
        refusals.append(
            f"The range is {max(frames, 0)} frame{'s' if frames != 1 else ''}: an animation needs at "
            "least 2. Set a longer frame range in Output."
        )
    if context is None and max_frames and frames > max_frames:
        refusals.append(
            f"{frames} frames is more than the motion module {snap['motion_module']!r} takes at once "
            f"({max_frames}). Tick Context windows in Output, or shorten the range."
        )
    if context is not None and max_frames and context["length"] > max_frames:
        refusals.append(
            f"The context window ({context['length']}) is longer than the motion module takes "
            f"({max_frames}). Set Window to 16."
        )
    n_windows = windows(frames, context) if frames >= 2 else 0
    windowed = context is not None and (n_windows > 1 or context["loop"])
    per_window = min(frames, context["length"]) if windowed else frames
    iterations = snap.get("free_init_iterations", 1)
    init = snap.get("init")  # video-to-video runs int(steps · strength) of the steps
    steps = min(int(snap["steps"] * init["strength"]), snap["steps"]) if init else snap["steps"]
    work = n_windows * per_window * steps * iterations
    w, h = snap["width"], snap["height"]
    if max(w, h) > COMFORT_LONG_SIDE:
        warnings.append(
            f"{w}x{h} is large for SD1.5 motion modules (trained at 512): expect slow steps, "
            "out-of-memory errors on small GPUs and repeated subjects"
        )
    if frames > COMFORT_FRAMES:
        warnings.append(f"{frames} frames takes long: try a shorter range first")
    camera_loras = snap.get("camera_motion") == "auto" or any(snap.get("motion_loras", {}).values())
    if version and version != "v2" and camera_loras:
        warnings.append(
            f"Camera motion LoRAs have no effect on {snap['motion_module']!r} ({version}); they need a v2 motion module"
        )
    if version and version != "v3" and snap.get("keyframes"):
        warnings.append(f"Keyframes (SparseCtrl) need a v3 motion module; {snap['motion_module']!r} is {version}")
    lines = [f"{w}x{h}, {frames} frames x {snap['steps']} steps"]
    if n_windows > 1:
        lines.append(f"{n_windows} windows of {context['length']}: {work} frame-steps")
    else:
        lines.append(f"one pass: {work} frame-steps")
    if iterations > 1:
        lines.append(f"FreeInit: the whole generation runs {iterations} times")
    return {
        "frames": frames,
        "steps": snap["steps"],
        "windows": n_windows,
        "work": work,
        "lines": lines,
        "warnings": warnings,
        "refusals": refusals,
    }
