"""The HTTP API: the app factory and one router per resource (jobs, models, plan, pose, health/release)."""

from .app import Settings, create_app

__all__ = ["Settings", "create_app"]
