"""A trained model's card: README.md in its checkpoint folder, in the Hugging Face model-card form
(a YAML header with ``model-index`` results, then what it is, its figures, its parameters, how to
load it, and what it is for and not).

The train stage writes it, so its figures are the validation split's - the split training kept
the best epoch on, beside the blind (question-only) baseline on the same questions, with 95%
intervals over the questions. The test figures are the evaluate stage's (metrics/eval.json); the
train stage does not read the test split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from vqalab.models.base import VQAModel

def model_card(model: VQAModel, meta: dict, figures: dict) -> str:
    """The card of ``model``'s checkpoint, described by ``meta`` (what its checkpoint.json holds),
    with its validation ``figures``: ``accuracy``, ``accuracy_ci95``, ``blind_accuracy``,
    ``image_gain``, ``image_gain_ci95``, ``n``."""
    family, dataset, profile = meta["family"], meta["dataset"], meta["profile"]
    if "classify" in model.prediction_modes:
        answers_how = (f"It answers with one of the {len(meta['answers']):,} answers seen in training, so a question "
                       f"whose answer training never saw is answered wrong.")
    else:
        answers_how = ("It writes a short answer, scored by exact match after normalisation: a right answer worded "
                       "otherwise counts as wrong.")
    name = f"vqalab-{family}-{dataset}-{profile}"
    header = {
        "library_name": "vqalab",
        "pipeline_tag": "visual-question-answering",
        "tags": ["vqalab", "visual-question-answering", family, dataset],
        "datasets": [dataset],
        "metrics": ["accuracy"],
        "model-index": [{"name": name, "results": [{
            "task": {"type": "visual-question-answering", "name": "Visual question answering"},
            "dataset": {"name": dataset, "type": dataset, "split": "validation"},
            "metrics": [{"type": "accuracy", "name": "validation accuracy", "value": round(100 * figures["accuracy"], 2)},
                        {"type": "accuracy", "name": "blind baseline validation accuracy",
                         "value": round(100 * figures["blind_accuracy"], 2)}]}]}],
    }
    low, high = figures["accuracy_ci95"]
    gain_low, gain_high = figures["image_gain_ci95"]
    pretrained = meta.get("pretrained") or {}
    sources = "\n".join(f"- `{part['param']}` = `{part['source']}` ({part['tensors']} tensors, sha256 "
                        f"`{part['sha256'][:16]}...`)" for part in pretrained.values())
    parameters = yaml.safe_dump({"model": {"name": family, **meta["config"]}, "train": meta["train_params"],
                                 "seed": meta["seed"]}, sort_keys=False)
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {name}

{family} ({model.description}), trained by vqalab on **{dataset}**
(profile `{profile}`, seed {meta["seed"]}): {meta["n_train"]:,} training and {meta["n_val"]:,} validation questions,
{len(meta["answers"]):,} answers. Training kept epoch {meta["best_epoch"]} of {meta["epochs_run"]}, the best on validation.

## Results (validation split)

| | accuracy [95% interval] |
|---|---|
| this model | {100 * figures["accuracy"]:.2f}% [{100 * low:.2f}, {100 * high:.2f}] |
| blind baseline (the question alone) | {100 * figures["blind_accuracy"]:.2f}% |
| image gain (this model - blind, paired) | {100 * figures["image_gain"]:+.2f} pts [{100 * gain_low:+.2f}, {100 * gain_high:+.2f}] |

{figures["n"]:,} validation questions; 95% intervals over them (one run: the training seed's variation is not
counted; `vqalab compare` counts it over several seeds). The epoch was chosen on
this split, so these figures lean optimistic: the test figures are the evaluate stage's
(`metrics/eval.json` of the run that made this folder: `dvc metrics show`).

## Parameters

```yaml
{parameters.strip()}
```

## How to load it

```python
from vqalab.models.checkpoint import load_checkpoint

model, meta = load_checkpoint("path/to/this/folder")  # builds the pretrained parts from their sources
answers = model.predict(model.collate(items), top_k=1)
```

or `vqalab predict --model path/to/this/folder --image photo.png --question "what is in the image?"`.
The folder holds what training made; the pretrained parts it was built on are loaded from their
sources and must hash as recorded (a swapped or updated source is refused, naming it):

{sources or "- none: every weight is in this folder"}

## Intended use and limits

For comparing visual question answering models on {dataset} under the same pipeline, as the study
vqalab reproduces does. {answers_how}
Small data sets give wide intervals: compare models over several seeds (`vqalab compare`). Not for
clinical or other decisions about people: a model trained on radiology questions here is a research
artefact, not a diagnostic tool.
"""
