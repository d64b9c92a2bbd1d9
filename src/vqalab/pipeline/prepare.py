"""Steps download and preprocess at once, for a benchmark: the processed data a run trains on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vqalab.params import Params
from vqalab.pipeline.download import download_data
from vqalab.pipeline.preprocess import preprocess_data


def prepare_data(params: Params, work: Path) -> Path:
    """Both steps into ``work``, each done once per value of what its output depends on (as DVC
    would cache them); the processed folder."""
    raw = work / f"raw-{_key(params, 'dataset', 'dataset_config', 'download')}"
    if not raw.exists():
        download_data(Params(params.values, stage="download"), raw, downloads=work / "downloads")
    processed = work / f"processed-{raw.name}-{_key(params, 'seed', 'preprocess', 'family')}"
    if not processed.exists():
        preprocess_data(Params(params.values, stage="preprocess"), raw, processed)
    return processed


def _key(params: Params, *names: str) -> str:
    """A short hash of the values of ``names`` (the family: its image geometry only)."""
    values = params.values
    picked = {name: values[name] for name in names}
    if "family" in picked:
        picked["family"] = {k: picked["family"][k] for k in ("image_size", "resize")}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:12]
