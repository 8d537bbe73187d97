"""Jobs per hour of the Ray Serve application with 1 and 2 generator replicas in one run, and what the ingress
costs per job, on the tiny models on CPU.

    python bench/bench_ray.py [--jobs 8] [--frames 8] [--steps 10] [--replica-cpus 1]

For each replica count it starts `python -m server --ray` on a local Ray cluster (each replica: --replica-cpus
logical CPUs, which Ray also gives torch as its thread count), warms every replica, then submits --jobs jobs at once
(the same pair: every one warm) and times them from the first submit to the last `done`. Per job it reads:
- replica gap: the next job's start on a replica minus the previous job's end there (manifest timings), the time a
  replica waits between two queued jobs: ingress queue, Serve routing, the payload, the replica's setup;
- client overhead: submit to `done` at the client minus the time queued and the replica's own run time
  (`timings.queued_s`, `timings.total_s`): the submission, the dispatch and the streaming back;
- ingress CPU: the ingress replica process's CPU seconds over the run divided by the jobs: the serial part, which
  bounds how many GPUs one ingress can feed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import tiny_spec  # noqa: E402

from backend import launcher  # noqa: E402
from server.protocol import parse_events  # noqa: E402
from tests.support import tiny_models  # noqa: E402

TOKEN = "bench"


def ingress_cpu_s() -> float:
    """CPU seconds (user + system) of the ingress replica process, found by its Ray process title."""
    tick = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        try:
            if b"ServeReplica:marionette:Ingress" in (proc / "cmdline").read_bytes():
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            continue
    raise RuntimeError("no ingress replica process found")


def run_job(client: httpx.Client, spec: dict) -> dict:
    t0 = time.time()
    job = client.post("/jobs", json=spec).json()["id"]
    with client.stream("GET", f"/jobs/{job}/events") as r:
        last = list(parse_events(r.iter_lines()))[-1]
    wall = time.time() - t0
    assert last[1] == "done", last
    manifest = client.get(f"/jobs/{job}/manifest").json()
    return {"wall": wall, "manifest": manifest}


def measure(models: Path, replicas: int, args) -> dict:
    data = Path(tempfile.mkdtemp(prefix=f"bench-ray-{replicas}-"))
    server = launcher.start(
        args=["--ray", "--replicas", str(replicas), "--replica-gpus", "0", "--replica-cpus", str(args.replica_cpus)]
        + ["--ray-cpus", str(int(replicas * args.replica_cpus) + 1), "--models", str(models), "--port", "0"]
        + ["--data", str(data), "--token", TOKEN],
        log=data / "stdout.log",
        timeout=300,
        env={"RAY_ADDRESS": ""},
    )
    try:
        spec = dict(tiny_spec(frames=args.frames, steps=args.steps), width=args.size, height=args.size)
        with (
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600) as client,
            ThreadPoolExecutor(args.jobs) as pool,
        ):
            list(pool.map(lambda _: run_job(client, spec), range(replicas)))  # every replica warm
            cpu0, t0 = ingress_cpu_s(), time.time()
            results = list(pool.map(lambda i: run_job(client, {**spec, "seed": i}), range(args.jobs)))
            elapsed, cpu = time.time() - t0, ingress_cpu_s() - cpu0
    finally:
        server.stop(timeout=60)
    by_replica: dict[str, list[dict]] = {}
    for r in results:
        by_replica.setdefault(r["manifest"]["replica"]["replica"], []).append(r["manifest"]["timings"])
    gaps = []
    for timings in by_replica.values():
        timings.sort(key=lambda t: t["started_at"])
        gaps += [b["started_at"] - a["finished_at"] for a, b in zip(timings, timings[1:])]
    timed = [(r, r["manifest"]["timings"]) for r in results]
    run_s = [t["total_s"] for _, t in timed]
    return {
        "replicas": replicas,
        "jobs_per_hour": args.jobs / elapsed * 3600,
        "elapsed_s": elapsed,
        "run_s": sum(run_s) / len(run_s),
        "gap_s": sorted(gaps)[len(gaps) // 2] if gaps else float("nan"),
        "client_overhead_s": sorted(r["wall"] - t["queued_s"] - t["total_s"] for r, t in timed)[len(timed) // 2],
        "ingress_cpu_s": cpu / args.jobs,
        "jobs_per_replica": {k: len(v) for k, v in by_replica.items()},
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=8)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--replica-cpus", type=float, default=1.0)
    args = p.parse_args()
    models = Path(tempfile.mkdtemp(prefix="bench-ray-models-"))
    tiny_models.build_with(None, models)
    rows = [measure(models / "models.toml", n, args) for n in (1, 2)]
    print(
        f"os.cpu_count() = {os.cpu_count()}; each replica {args.replica_cpus} CPU; {args.jobs} jobs of "
        f"{args.frames} frames, {args.steps} steps, {args.size}x{args.size}"
    )
    print("| replicas | jobs/hour | run s/job | replica gap s/job | client overhead s/job | ingress CPU s/job |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['replicas']} | {r['jobs_per_hour']:.0f} | {r['run_s']:.3f} | {r['gap_s']:.3f} | "
            f"{r['client_overhead_s']:.3f} | {r['ingress_cpu_s']:.3f} |"
        )
    print(
        f"scaling 2/1: {rows[1]['jobs_per_hour'] / rows[0]['jobs_per_hour']:.2f}; jobs per replica (2): "
        f"{rows[1]['jobs_per_replica']}"
    )


if __name__ == "__main__":
    main()
