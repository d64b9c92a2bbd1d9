"""A checkpoint holds what training made and names the pretrained parts it was built on: a frozen
encoder is not copied into the folder, loading takes it from its source and checks its hash, and
the same training saves the same bytes."""

import json
from dataclasses import replace

import pytest
import torch
import yaml
from configs import family_config
from transformers import AutoTokenizer, BertConfig, BertModel

from vqalab.models.checkpoint import CARD_FILE, CHECKPOINT_FILE, WEIGHTS_FILE, load_checkpoint, save_checkpoint
from vqalab.models.card import model_card
from vqalab.models.resnet_bert import ResNetBert
from vqalab.pretrained import resolve_pretrained
from vqalab.runtime import seed_everything

ANSWERS = ["yes", "no", "red", "circle"]


def items(size=64, n=2):
    generator = torch.Generator().manual_seed(0)
    return [{"image": torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator),
             "question": q, "label": label} for q, label in [("is there a red shape?", 0), ("what shape is it?", 3)][:n]]


def save_small_bert(directory, seed):
    """A 2-layer BERT with the uncased vocabulary, as a local pretrained source."""
    torch.manual_seed(seed)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
              ).save_pretrained(directory)
    AutoTokenizer.from_pretrained(resolve_pretrained("packaged:all-MiniLM-L6-v2")).save_pretrained(directory)
    return directory


def trained(config, steps=2):
    """A model built and trained a few steps from seed 0: what the train stage would save. In eval
    mode: the frozen encoders run on pixels here (the pipeline runs them once, in the features
    stage), and their batch norms must not take these two batches' statistics."""
    seed_everything(0)
    model = ResNetBert.build(config, ANSWERS).eval()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        model(model.collate(items())).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model


FROZEN = family_config("resnet_bert", image_size=64, hidden_size=32, question_prior=False)  # the default: both frozen


def test_frozen_pretrained_encoders_stay_out_of_the_folder_and_come_back_from_their_sources(tmp_path):
    model = trained(FROZEN)
    pretrained = save_checkpoint(model, tmp_path / "ckpt", info={})
    assert {part["param"] for part in pretrained.values()} == {"model.text_encoder", "model.image_weights"}
    assert pretrained["text_encoder."]["source"] == "packaged:all-MiniLM-L6-v2"
    with open(tmp_path / "ckpt" / WEIGHTS_FILE, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    saved = {k for k in header if k != "__metadata__"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable <= saved and not any(k.startswith(("text_encoder.", "image_encoder.")) for k in saved)
    size_mb = (tmp_path / "ckpt" / WEIGHTS_FILE).stat().st_size / 2**20
    assert size_mb < 5, size_mb  # the 26.8M-parameter model's frozen 26.1M are its sources'
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    batch = model.collate(items())
    with torch.no_grad():
        assert torch.equal(loaded(batch).logits, model(batch).logits)
    assert meta["pretrained"] == pretrained


def test_fine_tuned_pretrained_weights_are_saved_and_the_untouched_rest_is_not(tmp_path):
    """partial: the last blocks of each encoder trained, and saved; the frozen first ones not."""
    model = trained(replace(FROZEN, image_training="partial", text_training="partial", image_encoder="resnet18",
                            image_weights=None))
    pretrained = save_checkpoint(model, tmp_path / "ckpt", info={})
    assert set(pretrained) == {"text_encoder."}  # a random-init CNN exists nowhere else: all of it is in the folder
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    batch = model.collate(items())
    with torch.no_grad():
        assert torch.equal(loaded(batch).logits, model(batch).logits)
    assert pretrained["text_encoder."]["tensors"] < len([k for k in model.state_dict() if k.startswith("text_encoder.")])


def test_a_swapped_pretrained_source_is_refused_naming_it(tmp_path):
    bert = save_small_bert(tmp_path / "bert", seed=1)
    config = replace(FROZEN, text_encoder=str(bert))
    save_checkpoint(trained(config), tmp_path / "ckpt", info={})
    load_checkpoint(tmp_path / "ckpt")  # the source as it was: loads
    save_small_bert(bert, seed=2)  # other weights under the same name
    with pytest.raises(ValueError) as refused:
        load_checkpoint(tmp_path / "ckpt")
    message = str(refused.value)
    assert f"model.text_encoder = {str(bert)!r} does not give the weights this model was trained on" in message
    assert "retrain (dvc repro -s train)" in message


def test_a_loaded_model_tokenizes_as_trained_whatever_its_source_holds_now(tmp_path):
    """Only weights are hash-checked: the tokenizer comes from the folder, not from the source."""
    bert = save_small_bert(tmp_path / "bert", seed=1)
    model = trained(replace(FROZEN, text_encoder=str(bert)))
    save_checkpoint(model, tmp_path / "ckpt", info={})
    other = AutoTokenizer.from_pretrained(bert)
    other.add_tokens(["shapeword"])
    other.save_pretrained(bert)  # the same weights, another vocabulary
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    assert len(loaded.tokenizer) == len(model.tokenizer) == len(other) - 1
    batch = model.collate(items())
    with torch.no_grad():
        assert torch.equal(loaded(loaded.collate(items())).logits, model(batch).logits)


def test_the_same_training_saves_the_same_bytes(tmp_path):
    for name in ("a", "b"):
        save_checkpoint(trained(FROZEN), tmp_path / name, info={"seed": 0},
                        card=lambda meta: json.dumps(meta, sort_keys=True))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for path in files:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes(), path


def test_the_model_card_is_a_hugging_face_card_with_its_figures(tmp_path):
    model = trained(FROZEN)
    info = {"dataset": "vqa_rad", "profile": "tiny", "seed": 0, "n_train": 1000, "n_val": 120, "best_epoch": 7,
            "epochs_run": 12, "train_params": {"max_epochs": 20}}
    figures = {"n": 120, "accuracy": 0.45, "accuracy_ci95": [0.36, 0.54], "blind_accuracy": 0.41, "image_gain": 0.04,
               "image_gain_ci95": [-0.02, 0.10]}
    save_checkpoint(model, tmp_path / "ckpt", info=info, card=lambda meta: model_card(model, meta, figures))
    card = (tmp_path / "ckpt" / CARD_FILE).read_text()
    _, header, body = card.split("---\n", 2)
    header = yaml.safe_load(header)
    assert header["library_name"] == "vqalab" and header["datasets"] == ["vqa_rad"]
    (result,) = header["model-index"][0]["results"]
    assert [m["value"] for m in result["metrics"]] == [45.0, 41.0]
    assert "| this model | 45.00% [36.00, 54.00] |" in body and "| blind baseline (the question alone) | 41.00% |" in body
    assert "+4.00 pts [-2.00, +10.00]" in body and "load_checkpoint(" in body and "Intended use and limits" in body
    assert "`model.text_encoder` = `packaged:all-MiniLM-L6-v2`" in body
    assert f"resnet_bert ({model.description})" in body and f"one of the {len(ANSWERS)} answers" in body
    assert "  image_size: 64\n" in body  # the parameters as checkpoint.json records them
    assert json.loads((tmp_path / "ckpt" / CHECKPOINT_FILE).read_text())["family"] == "resnet_bert"
