"""Run a command registered with `bpy.utils.register_cli_command` the way `blender --command ID ...` does.

The bpy module has no `--command` handling (that lives in Blender's `main()`), and `register_cli_command` returns
only an opaque capsule. The capsule points at Blender's C++ `BPyCommandHandler`: a vtable, the id as a
`std::string`, then the Python callable Blender calls with the arguments after the id. This reads the id and the
callable Blender holds from that object, so a test runs exactly what Blender would run for the id.
"""

from __future__ import annotations

import ctypes

_api = ctypes.pythonapi
_api.PyCapsule_GetName.restype = ctypes.c_char_p
_api.PyCapsule_GetName.argtypes = [ctypes.py_object]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def registered(handle, expected) -> tuple[str, object]:
    """(command id, callable) that Blender's handler behind `handle` holds; `expected` is the function the
    extension meant to register (its address is looked for among the handler's fields, nothing else is read)."""
    name = _api.PyCapsule_GetName(handle)
    assert name == b"bpy_cli_command", name
    address = _api.PyCapsule_GetPointer(handle, name)
    words = (ctypes.c_void_p * 12).from_address(address)
    data, size = words[1], words[2]
    command = ctypes.string_at(data, size).decode()
    for word in words[3:]:
        if word == id(expected):
            return command, ctypes.cast(word, ctypes.py_object).value
    raise AssertionError(f"Blender's handler for {command!r} does not hold {expected!r}")


def run(handle, expected, argv: list[str]) -> int:
    """What `blender -b FILE --command ID ARGV...` does once the file is loaded: call the callable with ARGV."""
    _, execute = registered(handle, expected)
    return execute(list(argv))
