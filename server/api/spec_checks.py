"""Every problem of a spec in one answer: the one path /plan and POST /jobs check a parsed spec through.

422 is the artist's mistake: every problem found, each on its field, spec fields first (unknown model names, then
each check of CHECKS in order), then the uploads. 409 is the server's side: a configured model whose files are
missing or broken; it is answered only for a spec with no 422 problem, since fixing those may change the models.
A check that needs a model's files skips models that are unknown or not on this machine: the other answers say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..loaders import CheckpointError, ModelConfig, ModelEntry, hub, motion_adapter_info
from ..loaders.vae import misfit, vae_config
from ..protocol import JobSpec, SpecError
from .checks import require_files
from .family_checks import family_problems
from .model_names import resolve_models
from .prompt_checks import prompt_problems

Problems = list[tuple[str, str]]


class SpecProblems(SpecError):
    """The 422 of a spec: `errors` as (field, message); `details` holds one dict per error, the extra keys its
    item carries (an unknown model's kind, name and configured names, which clients use to say what to pick)."""

    def __init__(self, errors: Problems, details: list[dict]):
        self.details = details
        super().__init__(errors)


@dataclass
class Named:
    """A spec with the configured models it names ((spec field, entry); names the config lacks are left out)."""

    models: ModelConfig
    spec: JobSpec
    entries: list[tuple[str, ModelEntry]]
    broken: list[CheckpointError] = field(default_factory=list)  # files a check could not read: a 409 later
    _present: dict[ModelEntry, bool] = field(default_factory=dict)

    def ready(self, spec_field: str) -> ModelEntry | None:
        """The entry of a spec field when the config has it and its files are on this machine."""
        entry = next((e for f, e in self.entries if f == spec_field), None)
        if entry is not None and entry not in self._present:
            self._present[entry] = hub.availability(entry)["available"]
        return entry if entry is not None and self._present[entry] else None

    def read(self, entry: ModelEntry, reader: Callable, *args):
        """reader(*args), or None when the model's file cannot be read (kept for the 409)."""
        try:
            return reader(*args)
        except CheckpointError as e:
            e.kind, e.name = entry.kind, entry.name
            self.broken.append(e)
            return None


def vae_fit(named: Named) -> Problems:
    """A separate VAE's latent space is the base's, from the two configs alone (no weights: /plan stays instant)."""
    vae, base = named.ready("vae"), named.ready("base")
    if vae is None or base is None:
        return []
    configs = [named.read(e, vae_config, e.source, e.config, e.weight_name) for e in (vae, base)]
    problem = misfit(*configs) if None not in configs else None
    return [("vae", f"{vae.name!r}: {problem}")] if problem else []


def frame_limits(named: Named) -> Problems:
    """The frames the motion module sees at once: the context windows, or the whole clip when it fits in one
    window (then no window runs)."""
    spec, module = named.spec, named.ready("motion_module")
    info = module and named.read(module, motion_adapter_info, module.source, module.config)
    if not info:
        return []
    most = info["max_frames"]
    if spec.context is not None and min(spec.context.length, spec.frames) > most:
        message = (
            f"windows of {spec.context.length} frames are more than the motion module {spec.motion_module!r} "
            f"takes ({most}); 16 is what it was trained on"
        )
        return [("context.length", message)]
    if spec.context is None and spec.frames > most:
        message = (
            f"{spec.frames} frames is more than the motion module {spec.motion_module!r} takes ({most}) in one "
            f'pass; shorten the clip or send "context" windows (e.g. length 16, overlap 4)'
        )
        return [("frames", message)]
    return []


# Each check: Named -> [(field, message)], run in this order after the model names. Adding one is one line.
CHECKS: tuple[Callable[[Named], Problems], ...] = (
    lambda named: family_problems(named.models, named.spec, named.entries),  # SDXL, Flux... refused before loading
    lambda named: prompt_problems(named.models, named.spec),
    vae_fit,
    frame_limits,
)


def check_spec(models: ModelConfig, spec: JobSpec, uploads: Callable[[], Problems] | None = None) -> Named:
    """Run every check of a parsed spec (and `uploads`, the upload checks of POST /jobs); returns the named
    models. Raises SpecProblems (every problem: 422), then HTTPException 409 (a model's files are missing), then
    CheckpointError (a model's file is broken: 409)."""
    entries, unknown = resolve_models(models, spec)
    named = Named(models, spec, entries)
    errors = [(f, message) for f, message, _ in unknown]
    details = [detail for _, _, detail in unknown]
    for check in CHECKS:
        errors += check(named)
    if uploads is not None:
        errors += uploads()
    if errors:
        raise SpecProblems(errors, details + [{}] * (len(errors) - len(details)))
    needed = [entry for _, entry in entries]
    # each IP-Adapter brings its image encoder (the config names only encoders it has)
    needed += [models.get("image_encoder", e.image_encoder) for e in needed if e.kind == "ip_adapter"]
    for entry in dict.fromkeys(needed):
        require_files(entry)
    if named.broken:
        raise named.broken[0]
    return named
