"""Blocking work of a request (hashing, plotting, model inspection, guide decoding and saving) runs on the app's
own small executor: never on the event loop, and never competing with the threads of sync routes."""

from __future__ import annotations

import asyncio
import functools

from fastapi import Request


async def off_loop(request: Request, fn, *args, **kwargs):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app.state.blocking, functools.partial(fn, *args, **kwargs))
