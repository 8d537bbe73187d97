"""Command-line entries that drive the installed extension headless (bpy module or `blender -b`). Not shipped in
the extension zip."""
