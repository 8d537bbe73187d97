"""`python -m server`: start the Marionette generation server."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import socket
import sys
from pathlib import Path

from .protocol import DEFAULT_PORT


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m server", description="Marionette's AnimateDiff generation server")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument(
        "--token",
        default=os.environ.get("MARIONETTE_TOKEN"),
        help="bearer token every request must carry; required for any non-loopback host (default: $MARIONETTE_TOKEN)",
    )
    p.add_argument("--models", type=Path, help="model config TOML (default: the public models by hub id)")
    p.add_argument(
        "--model-root",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="an AUTOMATIC1111/Forge or ComfyUI install (or a folder of models) whose models the server offers "
        "beside the config's; repeat for several (the first one wins a name both have)",
    )
    p.add_argument("--data", type=Path, default=Path("data"), help="folder for job folders (default ./data)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument(
        "--dtype",
        choices=("float16", "bfloat16", "float32"),
        help="weights dtype (default: float16 on CUDA, float32 on CPU)",
    )
    p.add_argument(
        "--low-vram",
        action="store_true",
        help="float8 weight storage, ControlNets in host memory except while they run, tiled VAE decode "
        "(slower; for GPUs with little memory)",
    )
    p.add_argument("--max-upload-mb", type=int, default=512, help="largest request body accepted (default 512)")
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name clients may reach the server by (besides the bound host and "
        "loopback names); repeat for several",
    )
    ray = p.add_argument_group("Ray Serve (needs the ray extra: pip install 'ray[serve]')")
    ray.add_argument(
        "--ray",
        action="store_true",
        help="serve as a Ray Serve application: jobs run on generator replicas (one per GPU) on the cluster at "
        "$RAY_ADDRESS, or on a local cluster started here",
    )
    ray.add_argument("--replicas", type=int, help="generator replicas (default: the cluster's GPUs, at least 1)")
    ray.add_argument("--replica-gpus", type=float, help="GPUs per replica (default 1 when the cluster has GPUs)")
    ray.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs per replica (default 1; fractions work)")
    ray.add_argument("--ray-cpus", type=int, help="CPUs of a local cluster started here (default: all)")
    args = p.parse_args(argv)
    for root in args.model_root:
        if not root.expanduser().is_dir():
            p.error(f"--model-root {root}: {'not a folder' if root.expanduser().exists() else 'folder not found'}")
    if not _loopback(args.host) and not args.token:
        p.error(f"--host {args.host} exposes the server beyond this machine: give --token (or MARIONETTE_TOKEN)")
    return args


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """On SIGTERM/SIGINT, first end the jobs: the running one is cancelled and every open event stream gets
        its final event, so that uvicorn's graceful shutdown finds the streams closing instead of cutting them."""

        queue = None
        _loop = None

        async def serve(self, sockets=None):
            self._loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig, frame):
            if self.queue is not None and self._loop is not None and not self.should_exit:
                # A signal handler may interrupt the loop's thread inside a lock: run the stop as a callback.
                self._loop.call_soon_threadsafe(self.queue.begin_stop)
            super().handle_exit(sig, frame)

    return Server


def main(argv=None):
    args = parse_args(argv)
    if args.ray:
        try:
            from .cluster.launch import serve_on_ray
        except ImportError as e:
            sys.exit(f"--ray needs Ray Serve ({e}); install it with: pip install 'ray[serve]==2.60.0'")
        return serve_on_ray(args)
    from diffusers.utils import logging as diffusers_logging

    # The worker thread runs the pipeline's Python between torch calls; a shorter GIL switch interval lets the
    # event loop answer within a few ms of a request instead of up to 5 ms per blocking point.
    sys.setswitchinterval(0.001)
    diffusers_logging.set_verbosity_error()  # dtype-cast chatter on every load hides what matters in the log
    from .api import Settings, create_app
    from .loaders import ModelConfig

    models_file = args.models
    try:
        config = ModelConfig.load(models_file, roots=args.model_root)
    except (OSError, ValueError) as e:
        sys.exit(f"cannot read the model config {models_file}: {e}")
    if args.low_vram:
        os.environ["MARIONETTE_LOW_VRAM"] = "1"  # read by the model store
    settings = Settings(
        models=config,
        data_dir=args.data / "jobs",
        token=args.token,
        device=args.device,
        dtype=args.dtype,
        max_upload_mb=args.max_upload_mb,
        host=args.host,
        allowed_hosts=tuple(args.allow_host),
        log_dir=args.data,
    )
    app = create_app(settings)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        sys.exit(f"cannot listen on {args.host}:{args.port}: {e}. Is another server running? Try --port 0.")
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host

    def ready():
        print(f"Marionette server ready at http://{host}:{port} (device {app.state.store.device})", flush=True)

    app.router.on_startup.append(ready)

    import uvicorn

    server = _server_class()(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    server.queue = app.state.queue
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
