"""The batch's styling options onto the scene settings the extension's Generate reads."""

from __future__ import annotations


def apply(args, settings):
    """--reference, --init-strength, --free-init, --motion-scale(s) onto the scene settings (the same for every action
    and direction)."""
    if args.reference:
        settings.references.clear()
        for path, weight in args.reference:
            item = settings.references.add()
            item.source, item.image_path, item.weight, item.model = "FILE", str(path), weight, args.reference_model
    if args.init_strength is not None:
        settings.use_init, settings.init_strength = True, args.init_strength
        settings.init_engine = args.init_engine.upper()
    if args.free_init is not None:
        settings.free_init_iterations = args.free_init
    if args.motion_scale is not None:
        settings.motion_scale = args.motion_scale
    if args.motion_scales is not None:
        settings.window_motion_scales = args.motion_scales
