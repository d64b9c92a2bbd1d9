"""What the GPU benchmarks share: a synthetic processed data set, and the training loop's step.

The data is synthetic (the device machine has no data and no network) but has the pipeline's own
types - ``ProcessedData`` and the ``VQADataset`` items it splits into - so a model is built by
``vqalab.harness.build_model`` and fed by its family's ``collate``, as in a real run.

``LoopStep`` is one optimiser step of ``vqalab.training.loop.fit``: the same batches (``IndexedBatches``
when every input is cached, else a shuffled ``DataLoader`` with the family's collator), the same
AdamW over ``model.param_groups()``, linear warm-up schedule, autocast, gradient scaler, gradient
clipping and ``loss.item()``. fit has its step inline (no function to call), so this mirrors it
line for line; when the loop changes, change it here too (tests/test_bench.py checks that both
train a model to the same weights).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from vqalab.config import TrainParams
from vqalab.data.dataset import IndexedBatches, ProcessedData, VQADataset
from vqalab.data.schema import Record
from vqalab.data.vocab import AnswerVocab
from vqalab.training.device import resolve_precision, to_device

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


def loop_batches(model, train_set: VQADataset, *, batch_size: int, device: torch.device, seed: int = 0):
    """fit's batches, drawn for ever (a new shuffled epoch when one ends). A benchmark sizes the
    split to a multiple of ``batch_size``, so every batch holds ``batch_size`` questions."""
    generator = torch.Generator().manual_seed(seed)
    if train_set.fully_cached():
        loader = IndexedBatches(train_set, batch_size=batch_size, shuffle=True, generator=generator, device=device)
    else:
        loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, collate_fn=model.collate,
                            generator=generator)
    while True:
        yield from loader


class LoopStep:
    """One step of fit's inner loop, over ``batches``; ``steps_planned`` sizes the schedule."""

    def __init__(self, model, batches, *, params: TrainParams, device: torch.device, steps_planned: int):
        self.model, self.batches, self.params, self.device = model.to(device), batches, params, device
        model.train()
        self.amp_dtype = resolve_precision(params.precision, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.optimizer = torch.optim.AdamW(model.param_groups(), weight_decay=params.weight_decay)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(params.warmup_ratio * steps_planned),
                                                         steps_planned)
        self.last_loss = None

    def __call__(self) -> None:
        batch = next(self.batches)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            output = self.model(to_device(batch, self.device))
        self.scaler.scale(output.loss).backward()
        if self.params.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.params.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.last_loss = output.loss.item()  # fit reads the loss every step (a host sync on CUDA)
