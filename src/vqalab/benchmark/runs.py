"""The inputs of a benchmark's training runs, made by the pipeline's own steps (``vqalab.pipeline``).

``RunInputs`` gives a run its processed data (download and preprocess), its frozen encoders'
features and its blind baseline, each made once per value of what it depends on - as DVC caches
the stages' outputs - so runs that differ in a learning rate or a strategy share them. The
processed data and the blind baselines are kept in a work folder, for later benchmarks too; the
features in memory, as the features stage makes them (its fixed batch), for this process only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from vqalab.data.dataset import ProcessedData
from vqalab.data.features import CachedFeatures
from vqalab.evaluation.blind import BlindBaseline
from vqalab.params import Params
from vqalab.pipeline.blind import blind_baseline
from vqalab.pipeline.features import frozen_encoder_features
from vqalab.pipeline.prepare import prepare_data


class RunInputs:
    def __init__(self, work: Path):
        self.work = work
        self._data: dict[Path, ProcessedData] = {}
        self._features: dict[tuple[Path, str], CachedFeatures] = {}

    def processed(self, params: Params) -> Path:
        """The processed folder of ``params`` (downloaded and preprocessed the first time)."""
        return prepare_data(params, self.work)

    def data(self, params: Params) -> ProcessedData:
        processed = self.processed(params)
        if processed not in self._data:
            self._data[processed] = ProcessedData.load(processed)
        return self._data[processed]

    def features(self, params: Params, *, device: torch.device) -> CachedFeatures:
        """The frozen encoders' features (``vqalab.pipeline.features``), once per processed data
        and ``Params.encoders`` (what they depend on)."""
        key = (self.processed(params), json.dumps(params.encoders, sort_keys=True))
        if key not in self._features:
            self._features[key] = frozen_encoder_features(params, self.data(params), device=device)
        return self._features[key]

    def blind(self, params: Params) -> BlindBaseline:
        """The blind baseline (``vqalab.pipeline.blind``), once per processed data and SBERT scorer."""
        processed = self.processed(params)
        folder = self.work / f"blind-{processed.name}-{re.sub(r'[^A-Za-z0-9.-]', '_', params.sbert_model)}"
        if not folder.exists():
            data = self.data(params)
            blind_baseline(params, data.records, data.vocab.answers).save(folder)
        return BlindBaseline.load(folder)
