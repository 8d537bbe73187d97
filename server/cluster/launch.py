"""`python -m server --ray`: the server as a Ray Serve application, on the cluster at $RAY_ADDRESS or on a local
one started here. Prints the same ready line as the single-process server; SIGTERM/SIGINT stop the application
(and the local cluster when this command started it)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from pathlib import Path

import ray
from ray import serve

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `server` package


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_on_ray(args) -> None:
    from .deployments import build

    address = os.environ.get("RAY_ADDRESS")
    # Replicas import `server` from this checkout (on a cluster, give every node the same path or an image with it).
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": path}}
    if address:
        ray.init(address=address, runtime_env=runtime_env, namespace="marionette")
    else:
        ray.init(num_cpus=args.ray_cpus, runtime_env=runtime_env, namespace="marionette", include_dashboard=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    replicas = args.replicas or max(gpus, 1)
    replica_gpus = args.replica_gpus if args.replica_gpus is not None else (1 if gpus else 0)
    port = args.port or _free_port(args.host)
    serve.start(http_options={"host": args.host, "port": port})
    app = build(
        {
            "models": str(args.models.resolve()) if args.models else None,
            "model_roots": [str(r.expanduser().resolve()) for r in args.model_root],
            "data": str(args.data.resolve()),
            "token": args.token,
            "host": args.host,
            "allow_host": list(args.allow_host),
            "max_upload_mb": args.max_upload_mb,
            "device": args.device,
            "dtype": args.dtype,
            "low_vram": args.low_vram,
            "replicas": replicas,
            "replica_gpus": replica_gpus,
            "replica_cpus": args.replica_cpus,
        }
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.run(app, name="marionette", route_prefix="/")
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"Marionette server ready at http://{host}:{port} (Ray Serve: {replicas} generator replicas, "
            f"{replica_gpus} GPU each)",
            flush=True,
        )
        stop.wait()
    finally:
        try:
            serve.delete("marionette")
            serve.shutdown()
        finally:
            ray.shutdown()
    sys.exit(0)
