"""Blender-side logic without UI. Standard library, numpy, bpy and mathutils only."""
