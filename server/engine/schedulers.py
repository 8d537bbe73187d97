"""Schedulers by name, with the settings the published AnimateDiff models were made with."""

from __future__ import annotations

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, LCMScheduler

_COMMON = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear", "steps_offset": 1}

# name -> (class, settings over the common ones)
SCHEDULERS = {
    "ddim": (DDIMScheduler, {"clip_sample": False, "set_alpha_to_one": False, "timestep_spacing": "linspace"}),
    "euler": (EulerDiscreteScheduler, {"timestep_spacing": "linspace"}),
    "dpmpp_2m": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "timestep_spacing": "linspace"},
    ),
    "lcm": (LCMScheduler, {"timestep_spacing": "linspace"}),  # AnimateLCM: 4-8 steps, guidance 1-2
    "euler_trailing": (EulerDiscreteScheduler, {"timestep_spacing": "trailing"}),  # AnimateDiff-Lightning
}


def make_scheduler(name: str, base_config=None):
    """A fresh scheduler (they hold per-run state) from the base model's config with the named settings."""
    cls, settings = SCHEDULERS[name]
    config = dict(base_config or {})
    return cls.from_config({**config, **_COMMON, **settings})
