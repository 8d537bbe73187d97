"""The wire format (`server.protocol`, standard library only) as the add-on's backend imports it.

Inside Blender the extension is one package (marionette.backend, marionette.server); run from the extension root
(the CLI, tests) backend and server are top-level packages. This module is the one place that knows both.
"""

try:
    from ..server.protocol import *  # noqa: F403
except ImportError:
    from server.protocol import *  # noqa: F403
