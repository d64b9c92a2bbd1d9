"""resnet_bert in both profiles, built offline: forward, backward, checkpoint round trip."""

from dataclasses import replace

import pytest
import torch
from transformers import BertConfig, BertModel

from vqalab.data.vocab import IGNORE_INDEX
from vqalab.models.checkpoint import load_checkpoint, save_checkpoint
from vqalab.models.resnet_bert import ResNetBert, ResNetBertConfig
from vqalab.models.pretrained import resolve_pretrained

ANSWERS = ["yes", "no", "red", "circle"]
TINY = ResNetBertConfig(image_size=64, image_encoder="resnet_small", text_encoder="packaged:all-MiniLM-L6-v2",
                        freeze_text_encoder=True, hidden_size=32)


def items(size, n=2):
    generator = torch.Generator().manual_seed(0)
    return [
        {"image": torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator),
         "question": q, "label": label}
        for q, label in [("is there a red shape?", 0), ("what shape is it?", 3)][:n]
    ]


def test_tiny_forward_backward_and_frozen_text_encoder():
    torch.manual_seed(0)
    model = ResNetBert.build(TINY, ANSWERS)
    batch = model.collate(items(64))
    out = model(batch)
    assert out.logits.shape == (2, len(ANSWERS))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is None for p in model.text_encoder.parameters())
    assert model.classifier[-1].weight.grad is not None and model.image_encoder.stem[0].weight.grad is not None
    counts = model.parameter_counts()
    assert counts["trainable_params"] == counts["total_params"] - sum(p.numel() for p in model.text_encoder.parameters())


def test_frozen_question_cache_matches_direct_encoding():
    model = ResNetBert.build(TINY, ANSWERS).eval()
    batch = model.collate(items(64))
    cached = model.encode_questions(batch["input_ids"], batch["attention_mask"])
    again = model.encode_questions(batch["input_ids"], batch["attention_mask"])  # served from the cache
    unfrozen = ResNetBert.build(replace(TINY, freeze_text_encoder=False), ANSWERS).eval()
    with torch.no_grad():
        direct = unfrozen.encode_questions(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(cached, direct, atol=1e-5) and torch.equal(cached, again)


def test_questions_outside_the_vocabulary_give_no_loss():
    model = ResNetBert.build(TINY, ANSWERS)
    batch = model.collate([{**item, "label": IGNORE_INDEX} for item in items(64)])
    assert model(batch).loss is None


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = ResNetBert.build(TINY, ANSWERS).eval()
    batch = model.collate(items(64))
    save_checkpoint(model, tmp_path / "ckpt", info={"note": "test"})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["family"] == "resnet_bert" and meta["answers"] == ANSWERS and meta["note"] == "test"
    assert loaded.config == TINY
    with torch.no_grad():
        assert torch.equal(model(batch).logits, loaded(batch).logits)
    assert loaded.predict(batch, top_k=2)[0][0][0] in ANSWERS
    assert not list(tmp_path.glob(".ckpt*")), "no temporary folder may be left behind"


def test_paper_architecture_builds_through_the_hub_code_path(tmp_path):
    """ResNet50 + a bert-base-sized BERT (BertConfig() defaults) saved locally and loaded by path,
    the same from_pretrained call that takes the hub id bert-base-uncased."""
    bert_dir = tmp_path / "bert-base"
    BertModel(BertConfig()).save_pretrained(bert_dir)
    tokenizer_source = resolve_pretrained("packaged:all-MiniLM-L6-v2")  # the same uncased 30,522 vocabulary
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(bert_dir)
    config = ResNetBertConfig(image_size=224, image_encoder="resnet50", image_weights=None,
                              text_encoder=str(bert_dir), freeze_text_encoder=False, hidden_size=512)
    model = ResNetBert.build(config, ANSWERS)
    assert model.text_encoder.config.hidden_size == 768 and model.text_encoder.config.num_hidden_layers == 12
    counts = model.parameter_counts()
    assert counts["trainable_params"] == counts["total_params"]
    assert 130e6 < counts["total_params"] < 140e6  # ResNet50 (23.5M) + BERT-base (109.5M) + head: the study's ~135M
    out = model(model.collate(items(224)))
    out.loss.backward()
    assert out.logits.shape == (2, len(ANSWERS))
    groups = model.param_groups()
    assert [g["lr"] for g in groups] == [config.lr, config.encoder_lr]


def test_unknown_image_weights_file_is_named(tmp_path):
    config = ResNetBertConfig(image_size=64, image_encoder="resnet18", image_weights=str(tmp_path / "missing.pth"),
                              text_encoder="packaged:all-MiniLM-L6-v2")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        ResNetBert.build(config, ANSWERS)
