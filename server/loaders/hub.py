"""Whether a configured model's files are on this machine, how big its download is, and fetching it.

Hub models go into the standard Hugging Face cache, in huggingface_hub's layout (huggingface_hub answers which
files, versions and sizes), so `from_pretrained` finds them later with no network call. The bytes themselves are
fetched here, resumable across interruptions. Only the files the loaders read are fetched: a pipeline repo's unet, vae,
text encoder, tokenizer and scheduler, a model repo's config and weights, never the single-file checkpoints and
fp16 variants that share the repo.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from .config import ModelEntry
from .sources import HUB_FILE

PIPELINE_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
INDEX_FILES = ("model_index.json", "config.json")


def _hub_parts(entry: ModelEntry) -> tuple[str, list[str] | None]:
    """(repo, the files named by the config) — None when the repo's listing decides."""
    if m := HUB_FILE.fullmatch(entry.source):
        return m[1], [m[2]]
    if entry.weight_name:
        return entry.source, [entry.weight_name]
    return entry.source, None


def _weights_of(files: list[str]) -> list[str]:
    """The weights from_pretrained reads in one folder: safetensors without a variant infix, else .bin."""
    plain = [f for f in files if Path(f).name.count(".") == 1]
    for suffix in (".safetensors", ".bin"):
        chosen = [f for f in plain if f.endswith(suffix)]
        if chosen:
            return chosen
    return []


def files_to_fetch(listing: list[str]) -> list[str]:
    """The files of a diffusers hub repo the loaders need, from the repo's file listing."""

    def folder(name: str) -> list[str]:
        return [f for f in listing if str(Path(f).parent) == name]

    if "model_index.json" in listing:
        out = ["model_index.json"]
        for part in PIPELINE_PARTS:
            inside = [f for f in listing if f.startswith(part + "/") and f.count("/") == 1]
            out += [f for f in inside if f.endswith((".json", ".txt"))] + _weights_of(inside)
        return out
    root = folder(".")
    return [f for f in root if f.endswith(".json")] + _weights_of(root)


# Where hub models come from and go: the standard cache and endpoint unless the server is told otherwise (tests
# point these at a temporary cache and a local imitation of the hub).
ENDPOINT: str | None = None
CACHE: Path | None = None


def configure(endpoint: str | None = None, cache: Path | None = None):
    global ENDPOINT, CACHE
    ENDPOINT, CACHE = endpoint, Path(cache) if cache else None


def cache_dir() -> Path:
    from huggingface_hub import constants

    return CACHE or Path(constants.HF_HUB_CACHE)


def _snapshot(repo: str, cache: Path | None = None) -> Path | None:
    """The cached snapshot of the repo's main revision, if any."""
    base = Path(cache or cache_dir()) / ("models--" + repo.replace("/", "--"))
    try:
        commit = (base / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snap = base / "snapshots" / commit
    return snap if snap.is_dir() else None


def _cached_files(snap: Path) -> list[str]:
    return [
        str(p.relative_to(snap)).replace(os.sep, "/")
        for p in snap.rglob("*")
        if p.is_file() and not p.name.endswith(".incomplete")
    ]


def _is_complete(files: list[str]) -> bool:
    """Whether cached files make a loadable model: the index and weights for every part it needs."""
    if "model_index.json" in files:
        return all(
            _weights_of([f for f in files if f.startswith(part + "/")]) for part in ("unet", "vae", "text_encoder")
        )
    return bool(_weights_of([f for f in files if "/" not in f]))


def _local_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def availability(entry: ModelEntry, cache: Path | None = None) -> dict:
    """{"available", "where", "size"} of a model, from the disk alone (no network)."""
    if entry.local:
        path = Path(entry.source)
        config_ok = entry.config is None or not os.path.isabs(entry.config) or Path(entry.config).exists()
        if path.exists() and config_ok:
            return {"available": True, "where": str(path), "size": _local_size(path)}
        looked = str(path) if not path.exists() else str(entry.config)
        return {"available": False, "where": looked, "size": None}
    repo, named = _hub_parts(entry)
    snap = _snapshot(repo, cache)
    if snap is None:
        return {"available": False, "where": None, "size": None}
    present = _cached_files(snap)
    ok = all(f in present for f in named) if named else _is_complete(present)
    size = sum((snap / f).stat().st_size for f in (named or present) if (snap / f).is_file()) if ok else None
    return {"available": ok, "where": str(snap) if ok else None, "size": size}


def remote_files(entry: ModelEntry, endpoint: str | None = None, timeout: float = 10.0) -> dict[str, int | None]:
    """{file: size} the download of a hub model fetches, from the hub's listing (network)."""
    from huggingface_hub import HfApi

    repo, named = _hub_parts(entry)
    info = HfApi(endpoint=endpoint or ENDPOINT).model_info(repo, files_metadata=True, timeout=timeout)
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    wanted = named if named else files_to_fetch(sorted(sizes))
    missing = [f for f in wanted if f not in sizes]
    if missing:
        raise FileNotFoundError(f"{repo} on the hub has no {', '.join(missing)}")
    return {f: sizes[f] for f in wanted}


def _fetch_file(repo: str, name: str, cache: Path, endpoint: str | None, progress, cancelled) -> Path:
    """One file into the cache layout huggingface_hub reads (blobs/<etag>, snapshots/<commit>/<name>, refs/main).

    The bytes go to blobs/<etag>.incomplete, which a later call continues with a Range request; the blob is moved
    into place only once its size (and sha256, for the hub's LFS files) is right, so a cut-off download never
    looks complete. (huggingface_hub's own download does not keep a partial file across calls.)
    """
    import hashlib
    import http.client
    import shutil
    import urllib.request

    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url(repo, name, endpoint=endpoint or ENDPOINT))
    if not meta.commit_hash or not meta.etag:
        raise RuntimeError(f"{repo}/{name}: the hub did not say which version it serves (no commit or ETag)")
    storage = cache / ("models--" + repo.replace("/", "--"))
    blob = storage / "blobs" / meta.etag
    target = storage / "snapshots" / meta.commit_hash / name
    if not blob.exists():
        blob.parent.mkdir(parents=True, exist_ok=True)
        partial = blob.with_name(blob.name + ".incomplete")
        have = partial.stat().st_size if partial.exists() else 0
        if meta.size is not None and have > meta.size:
            partial.unlink()
            have = 0
        request = urllib.request.Request(meta.location)
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                if have and response.status != 206:  # the server ignored the Range: start over
                    have = 0
                with open(partial, "ab" if have else "wb") as out:
                    while block := response.read(1 << 20):
                        out.write(block)
                        have += len(block)
                        progress(name, have, meta.size)
                        if cancelled():
                            raise InterruptedError("download cancelled")
        except http.client.HTTPException as e:  # e.g. IncompleteRead: the connection dropped mid-file
            raise OSError(
                f"{repo}/{name}: the connection dropped after {have} bytes ({type(e).__name__}); "
                f"download again to resume"
            ) from None
        if meta.size is not None and have != meta.size:
            raise OSError(f"{repo}/{name}: got {have} of {meta.size} bytes; download again to resume")
        if re.fullmatch(r"[0-9a-f]{64}", meta.etag):  # LFS files: the ETag is the content's sha256
            h = hashlib.sha256()
            with open(partial, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != meta.etag:
                partial.unlink()
                raise OSError(
                    f"{repo}/{name}: the downloaded bytes do not match the hub's checksum; removed, download again"
                )
        os.replace(partial, blob)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(os.path.relpath(blob, target.parent))
        except OSError:  # no symlinks (Windows without developer mode): a copy, as huggingface_hub does
            shutil.copyfile(blob, target)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(meta.commit_hash)
    progress(name, blob.stat().st_size, meta.size)
    return target


def download(
    entry: ModelEntry, progress, endpoint: str | None = None, cache: Path | None = None, cancelled=lambda: False
) -> Path:
    """Fetch a hub model into the cache, calling progress(file, done, total) as bytes arrive. Resumable: a
    cut-off file continues from where it stopped."""
    repo, _ = _hub_parts(entry)
    cache = Path(cache or cache_dir())
    for name in remote_files(entry, endpoint):
        if cancelled():
            raise InterruptedError("download cancelled")
        _fetch_file(repo, name, cache, endpoint, progress, cancelled)
    snap = _snapshot(repo, cache)
    if snap is None:
        raise RuntimeError(f"{repo}: the download finished but the cache has no snapshot of it in {cache}")
    return snap


_sizes: dict[str, tuple[float, int | None]] = {}


def download_size(entry: ModelEntry, endpoint: str | None = None) -> int | None:
    """Bytes a download of the model fetches, when the hub can be asked (remembered); None offline."""
    from huggingface_hub import constants

    if entry.local:
        return None
    if constants.is_offline_mode():
        return None
    key = f"{entry.source}|{entry.weight_name}|{endpoint or ENDPOINT}"
    known = _sizes.get(key)
    if known is None or (known[1] is None and time.monotonic() - known[0] > 60):
        try:
            files = remote_files(entry, endpoint, timeout=5.0)
            size = sum(s or 0 for s in files.values()) if files else None
        except Exception:  # noqa: BLE001 - unknown size is an answer: the hub is unreachable or the repo gone
            size = None  # asked again after a minute, not on every /models call
        _sizes[key] = known = (time.monotonic(), size)
    return known[1]


def human_size(size: int | None) -> str:
    if size is None:
        return "size unknown while the hub cannot be reached"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def missing_message(entry: ModelEntry, where: str | None, size: int | None) -> str:
    """What to tell the user about a model whose files are not here, and what to do."""
    if entry.local:
        return (
            f"the {entry.kind} model {entry.name!r} is not on this machine: nothing at {where}; fix its path "
            f"in the model config or put the file there"
        )
    return (
        f"the {entry.kind} model {entry.name!r} ({entry.source}) is not downloaded yet: Download it in "
        f"Marionette \u25b8 Models ({human_size(size)})"
    )
