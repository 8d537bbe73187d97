"""The job folders as the record: a job read back from its folder (after a restart, or out of the in-memory history),
and the jobs a stop cut off marked "interrupted" when a server starts on the same data folder. Their frames stay
on disk and are served like any finished job's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..log import log, log_exception
from ..protocol import parse_spec
from .jobs import Job, write_atomic

JOB_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")


def frames_on_disk(frames_dir: Path) -> list[int]:
    """The indices of the frames written whole in a job's frames folder (frames are written through a temporary
    file)."""
    names = (p.stem.split("_")[1] for p in frames_dir.glob("frame_*.png"))
    return sorted(int(n) - 1 for n in names if n.isdigit())


def read_job(folder: Path) -> Job | None:
    """A job read back from its folder (after a restart, or out of the in-memory history); None if unreadable."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        spec = parse_spec(manifest["spec"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    job = Job(spec, folder, folder.name)
    job.manifest = manifest
    job.state = manifest.get("status", "interrupted")
    job.created = manifest.get("created", job.created)
    job.frames_ready = frames_on_disk(job.frames_dir)
    previews = sorted(
        int(p.stem.split("_")[1]) for p in (folder / "previews").glob("step_*.png") if p.stem.split("_")[1].isdigit()
    )
    job.step = previews[-1] if previews else 0
    job.error = manifest.get("message") if job.state in ("error", "interrupted") else None
    job.replay = (
        job.state,
        {
            "message": manifest.get("message", ""),
            "frames": len(job.frames_ready),
            "manifest": f"/jobs/{job.id}/manifest",
        },
    )
    return job


def mark_interrupted(data_dir: Path) -> list[str]:
    """Jobs whose manifest says queued or running were cut off by a stop: mark them interrupted."""
    found = []
    for folder in sorted(data_dir.iterdir()):
        if not JOB_ID.fullmatch(folder.name):
            continue
        for tmp in folder.rglob("*.tmp"):  # a write the stop cut short (frames and previews included)
            tmp.unlink(missing_ok=True)
        path = folder / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("status") not in ("queued", "running"):
            continue
        frames = sorted(p.name for p in (folder / "frames").glob("frame_*.png"))
        was = manifest["status"]
        manifest.update(
            status="interrupted",
            frames=frames,
            message=f"the server stopped while this job was {was}; {len(frames)} frames were "
            f"written; submit it again to finish it",
        )
        try:
            write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())
        except OSError as e:
            log_exception(f"marking job {folder.name} interrupted", e)
            continue
        found.append(folder.name)
    if found:
        log.warning("marked %d jobs interrupted after a stop: %s", len(found), ", ".join(found))
    return found
