"""The Ray Serve application: an ingress deployment serving the API of `server/api/` (one replica: it holds the
queue and the job folders) and a generator deployment running the jobs (one replica per GPU, one job at a time
each). A job is routed to the replica that holds its (base, motion module) pair through Serve's model
multiplexing, otherwise to the least busy one."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import ray
from ray import serve

from ..__main__ import _loopback as loopback
from ..api import Settings, create_app
from ..loaders import ModelConfig
from .remote import RayExecutor
from .replica import Replica


def _model_config(settings: dict) -> ModelConfig:
    models = Path(settings["models"]) if settings.get("models") else None
    return ModelConfig.load(models, settings.get("model_roots", ()))


def _store(settings: dict):
    from ..engine.store import ModelStore

    if settings.get("low_vram"):
        os.environ["MARIONETTE_LOW_VRAM"] = "1"
    models = _model_config(settings)
    return ModelStore(models, settings.get("device"), settings.get("dtype"))


@serve.deployment(name="Generator", max_ongoing_requests=1, ray_actor_options={"num_gpus": 1})
class Generator:
    """One replica per GPU: its own model store, one job at a time, events and files streamed back."""

    def __init__(self, settings: dict):
        from diffusers.utils import logging as diffusers_logging

        from ..engine import runner  # noqa: F401 - imported now, not in the first job's time

        sys.setswitchinterval(0.001)
        diffusers_logging.set_verbosity_error()
        store = _store(settings)
        identity = {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "pid": os.getpid(),
            "node": ray.util.get_node_ip_address(),
            "device": store.device,
        }
        self.replica = Replica(store, Path(tempfile.mkdtemp(prefix="marionette-replica-")), identity)

    @serve.multiplexed(max_num_models_per_replica=1)
    async def _pair(self, pair: str) -> str:
        # The store loads the pair when the job runs; this only tells Serve's router which pair the replica
        # holds (one: a second would not fit a GPU beside the first).
        return pair

    async def run(self, request: dict):
        await self._pair(serve.get_multiplexed_model_id())
        board, job_id = request["board"], request["id"]

        def asked() -> bool:  # on the job's thread, after every step and frame: one small round trip
            try:
                return ray.get(board.asked.remote(job_id), timeout=10)
            except Exception:  # noqa: BLE001 - the ingress is gone: nobody to cancel for; the job runs on
                return False

        def stored(index: int) -> bool:  # on the job's thread, after every frame: waits a second at most
            try:
                return ray.get(board.wait_stored.remote(job_id, index, 1.0), timeout=10)
            except Exception:  # noqa: BLE001 - the ingress is gone: nobody to hand the frame to
                return True

        async for message in self.replica.run(request, asked, stored):
            yield {**message, "loaded": self.replica.store.loaded()}

    def describe(self) -> dict:
        store = self.replica.store
        return {
            "device": store.device,
            "dtype": str(store.dtype).removeprefix("torch."),
            "device_reason": store.device_reason,
        }

    def release(self) -> dict:
        self.replica.store.release()
        return {"identity": self.replica.identity, "loaded": self.replica.store.loaded()}


@ray.remote(num_cpus=0)
class JobBoard:
    """What the ingress tells the replica running a job: that its cancel was asked for, and which of its frames
    the ingress has stored (the replica makes the next frame only then)."""

    def __init__(self):
        self.cancelled: set[str] = set()
        self.stored: dict[str, set[int]] = {}
        self.changed = asyncio.Condition()

    async def cancel(self, job_id: str):
        self.cancelled.add(job_id)

    async def asked(self, job_id: str) -> bool:
        return job_id in self.cancelled

    async def store(self, job_id: str, index: int):
        async with self.changed:
            self.stored.setdefault(job_id, set()).add(index)
            self.changed.notify_all()

    async def wait_stored(self, job_id: str, index: int, timeout: float) -> bool:
        """Whether frame `index` of the job is stored, waiting for it `timeout` seconds at most."""
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: index in self.stored.get(job_id, ())), timeout)
            except TimeoutError:
                return False
        return True

    async def forget(self, job_id: str):
        self.cancelled.discard(job_id)
        self.stored.pop(job_id, None)


@serve.deployment(name="Ingress", num_replicas=1, max_ongoing_requests=10_000, ray_actor_options={"num_cpus": 0.1})
@serve.ingress()
class Ingress:
    """The HTTP API of the single-process server; its jobs run on the generator deployment."""

    def __init__(self, generator, settings: dict, slots: int):
        self.generator, self.settings, self.slots = generator, settings, slots

    async def __serve_build_asgi_app__(self):
        s = self.settings
        token, host = s.get("token") or os.environ.get("MARIONETTE_TOKEN"), s.get("host", "127.0.0.1")
        if not token and not loopback(host):
            raise ValueError(
                f"host {host} exposes the server beyond this machine: set MARIONETTE_TOKEN on the Ray nodes or "
                f"give the application a token argument"
            )
        describe = await self.generator.describe.remote()
        executor = RayExecutor(self.generator, self.slots, describe, JobBoard.remote())
        data = Path(s["data"])
        settings = Settings(
            models=_model_config(s),
            data_dir=data / "jobs",
            token=token,
            device="cpu",  # the ingress's own store only plans (/plan reads model files); it never loads a model
            max_upload_mb=int(s.get("max_upload_mb", 512)),
            host=host,
            allowed_hosts=tuple(s.get("allow_host", ())),
            log_dir=data,
        )
        return create_app(settings, executor)


def build(args: dict) -> serve.Application:
    """The application from `serve run` config arguments (deploy/serve.yaml) or `python -m server --ray`:
    models, model_roots, data, token, host, allow_host, max_upload_mb, device, dtype, low_vram, replicas, replica_gpus,
    replica_cpus."""
    replicas = int(args.get("replicas", 1))
    actor = {"num_gpus": float(args.get("replica_gpus", 1)), "num_cpus": float(args.get("replica_cpus", 1))}
    keys = ("models", "model_roots", "device", "dtype", "low_vram")
    generator = Generator.options(num_replicas=replicas, ray_actor_options=actor).bind(
        {k: args[k] for k in keys if args.get(k) is not None}
    )
    ingress_keys = ("models", "model_roots", "data", "token", "host", "allow_host", "max_upload_mb")
    settings = {k: args[k] for k in ingress_keys if args.get(k) is not None}
    settings.setdefault("data", "data")
    return Ingress.bind(generator, settings, replicas)
