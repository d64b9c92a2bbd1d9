"""What the GPU benchmarks share: a synthetic processed data set, and the training loop's step.

The data is synthetic (a GPU machine without network has no data set) but has the pipeline's own
types - ``ProcessedData`` and the ``VQADataset`` items it splits into - so a model is built by
``vqalab.models.registry.build_model`` and fed by its family's ``collate``, as in a real run.

``LoopStep`` is one optimiser step of ``vqalab.training.loop.fit``, made by the loop's own
functions (``prepare_run``, ``train_step``): what a benchmark times is what a training run does.
"""

from __future__ import annotations

import numpy as np
import torch

from vqalab.config import TrainParams
from vqalab.data.dataset import ProcessedData, VQADataset
from vqalab.data.schema import Record
from vqalab.data.vocab import AnswerVocab
from vqalab.runtime import to_device
from vqalab.training.loop import prepare_run, train_step, training_batches

# Radiology-style question words: a synthetic question is a run of them, long enough to fill the
# text encoder's max_question_tokens, so the benchmark's sequences are as long as the reference's.
WORDS = ("is there a fracture in the left femur what organ system is shown this an mri where lesion located are "
         "lungs hyperinflated abnormality seen of chest ct scan with contrast axial plane brain mass").split()


def synthetic_data(*, questions: int, images: int, image_size: int, answers: int, words: int, seed: int = 0,
                   val_questions: int = 0) -> ProcessedData:
    """``questions`` training questions (and ``val_questions`` validation ones) over ``images``
    random images, ``words`` words each, answers drawn from ``answers`` labels."""
    generator = np.random.default_rng(seed)
    pixels = generator.integers(0, 256, size=(images, 3, image_size, image_size), dtype=np.uint8)
    answer_texts = [f"answer {i}" for i in range(answers)]
    records = []
    for split, n in (("train", questions), ("val", val_questions)):
        for i in range(n):
            question = " ".join(generator.choice(WORDS, size=words)) + "?"
            records.append(Record(id=f"{split}-{i}", image=f"{i % images}.png", question=question,
                                  answer=answer_texts[int(generator.integers(answers))], answer_raw="", split=split,
                                  answer_type="closed" if i % 2 else "open"))
    return ProcessedData(records=records, vocab=AnswerVocab(answer_texts), images=pixels,
                         image_row={f"{i}.png": i for i in range(images)})


def loop_batches(model, dataset: VQADataset, *, batch_size: int, device: torch.device, seed: int = 0):
    """The loop's batches of ``dataset`` (``training_batches``), drawn for ever: a new shuffled
    epoch when one ends."""
    generator = torch.Generator().manual_seed(seed)
    return forever(training_batches(model, dataset, batch_size=batch_size, generator=generator, device=device,
                                    indexed=True))


def forever(loader):
    """The batches of ``loader``, epoch after epoch (a shuffling loader reshuffles each time)."""
    while True:
        yield from loader


class LoopStep:
    """One optimiser step of ``fit``, run by the loop's own code: ``prepare_run`` (device,
    channels_last, compile, fused AdamW, schedule, scaler, batches) and ``train_step``."""

    def __init__(self, model, train_set: VQADataset, *, params: TrainParams, device: torch.device, seed: int = 0):
        self.run = prepare_run(model, train_set, params=params, device=device, seed=seed)
        self.model = self.run.model.train()
        self.batches = forever(self.run.loader)
        self.last_loss = None

    def __call__(self) -> None:
        batch = to_device(next(self.batches), self.run.device, channels_last=self.run.channels_last)
        self.last_loss = train_step(self.run, batch)  # on the device, as in fit: no host sync per step
