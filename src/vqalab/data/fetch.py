"""Getting a data set's files: from its public source when online, from a local copy otherwise.

Downloads retry with back-off, resume a partial file (HTTP Range) and land under their final
name only when complete and, where the source publishes a fixed file, only when the checksum
matches. When a source cannot be reached the error names it and the parameter that points the
stage at a local copy instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

from vqalab.io import atomic_path
from vqalab.pretrained import hub_offline

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class SourceUnavailable(RuntimeError):
    """A public source could not be reached; the message says how to use a local copy."""


def download(url: str, dest: Path, *, param: str, sha256: str | None = None, retries: int = 3,
             timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``); ``param`` names the local-copy parameter."""
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_of(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            offset = part.stat().st_size if part.exists() else 0
            request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                # 206: the server resumed; 200: it sent the whole file again.
                mode = "ab" if offset and response.status == 206 else "wb"
                with part.open(mode) as fh:
                    shutil.copyfileobj(response, fh, CHUNK)
            if sha256 is not None and (actual := sha256_of(part)) != sha256:
                part.unlink()
                raise ValueError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}")
            os.replace(part, dest)
            return dest
        except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as err:
            last_error = err
            log.warning("download of %s failed (try %d of %d): %s", url, attempt, retries, err)
            if attempt < retries:
                time.sleep(2 ** attempt)
    raise SourceUnavailable(
        f"could not download {url} after {retries} tries ({last_error}). Download it elsewhere and "
        f"set {param} to the local file or folder (dvc exp run -S {param}=/path/to/copy)."
    )


def hf_dataset_snapshot(repo_id: str, *, param: str, allow_patterns: list[str] | None = None) -> Path:
    """Fetch (or reuse from the local hub cache) a Hugging Face data set repository."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=allow_patterns))
    except Exception as err:  # the hub raises many types for one cause: unreachable or not cached
        raise SourceUnavailable(
            f"could not get the Hugging Face data set {repo_id} ({type(err).__name__}: {err}). With no "
            f"network, set {param} to a local copy of it (a folder holding its files)"
            + (", or put it in the hub cache (HF_HUB_OFFLINE=1 is set: only the cache was searched)." if hub_offline()
               else ", or put it in the hub cache and set HF_HUB_OFFLINE=1.")
        ) from None


def extract(archive: Path, into: Path) -> Path:
    """Unpack a .zip or .tar(.gz) archive into ``into`` once (refusing paths that escape it)."""
    if into.is_dir():
        return into  # unpacked by an earlier run: the rename below makes it complete
    with atomic_path(into, is_dir=True) as tmp:
        root = tmp.resolve()
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    if not (root / name).resolve().is_relative_to(root):
                        raise ValueError(f"{archive}: member {name!r} would be written outside {into}")
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        else:
            raise ValueError(f"{archive} is neither a zip nor a tar archive")
    return into


def files_under(root: Path) -> Iterator[Path]:
    """Every file under ``root``, following symlinked folders, which ``Path.rglob`` does not (before
    Python 3.13): a data set copy whose ``images/`` links elsewhere is read like a real folder.

    A link back to a folder being walked (a loop) is not entered, and is logged; a folder reached
    twice through different links is walked each time, so every path under ``root`` is listed.
    """
    def walk(folder: Path, ancestors: frozenset[str]) -> Iterator[Path]:
        with os.scandir(folder) as entries:
            entries = sorted(entries, key=lambda entry: entry.name)
        for entry in entries:
            path = folder / entry.name
            if entry.is_dir():  # follows links
                real = os.path.realpath(path)
                if real in ancestors:
                    log.warning("not following %s: it links back to %s, a folder that holds it", path, real)
                    continue
                yield from walk(path, ancestors | {real})
            elif entry.is_file():
                yield path

    yield from walk(Path(root), frozenset({os.path.realpath(root)}))


def local_source(source: str, *, param: str) -> Path:
    """A local file or folder named by a parameter: it must exist."""
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{param} = {source!r}: no such file or folder (relative paths start at the project root)")
    return path


def local_copy(source: str, *, param: str, downloads: Path) -> Path:
    """The folder of a local copy of a data set: the folder itself, or an archive unpacked once."""
    path = local_source(source, param=param)
    if path.is_dir():
        return path
    return extract(path, downloads / f"{path.name}.unpacked")
