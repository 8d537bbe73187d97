"""Marionette's generation server. Kept free of heavy imports: the Blender add-on imports server.protocol."""

__version__ = "0.1.0"
