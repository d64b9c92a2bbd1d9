"""Every registered family, built offline: tiny profiles from the project's params, paper
architectures from config objects saved with save_pretrained and loaded through the hub-id path."""

from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch
from transformers import (AutoTokenizer, BertConfig, BertModel, CLIPConfig, CLIPModel, ViltConfig,
                          ViltForQuestionAnswering)

from configs import family_config
from vqalab.models.checkpoint import load_checkpoint, save_checkpoint
from vqalab.models.fusion import FusionConfig
from vqalab.models.lora import LoraSettings
from vqalab.pretrained import resolve_pretrained
from vqalab.models.pubmedclip import PubMedClip, PubMedClipConfig
from vqalab.models.registry import FAMILIES, get_family
from vqalab.models.vilt import Vilt, ViltFamilyConfig

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = ["yes", "no", "red", "circle", "square"]
MINILM = "packaged:all-MiniLM-L6-v2"


def items(size, n=2):
    generator = torch.Generator().manual_seed(0)
    questions = [("is there a red shape?", 0), ("what shape is it?", 3), ("what colour?", 2)]
    return [{"image": torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator),
             "question": q, "answer": ANSWERS[label], "answer_type": "closed" if label < 2 else "open",
             "label": label} for q, label in questions[:n]]


def tiny_config(name):
    """The family's tiny profile exactly as conf/ composes it for the default data set (its recipe applied)."""
    return family_config(name, dataset="easy_vqa")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_tiny_family_trains_and_round_trips(name, tmp_path):
    config = tiny_config(name)
    torch.manual_seed(0)
    model = get_family(name).model_class.build(config, ANSWERS, train_texts=[i["question"] for i in items(64, 3)])
    batch = model.collate(items(config.image_size))
    out = model(batch)
    if model.prediction_modes == ("classify",):
        assert out.logits.shape == (2, len(ANSWERS))
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    grouped = sum(len(g["params"]) for g in model.param_groups())
    assert grouped == len(grads), "every trainable parameter is in exactly one optimiser group"

    model.eval()
    save_checkpoint(model, tmp_path / "ckpt", info={})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["family"] == name and type(loaded) is type(model)
    with torch.no_grad():
        # ViLT draws its image patches in a random order (multinomial), even in eval: same seed, same draw.
        torch.manual_seed(1)
        expected = model(batch).logits
        torch.manual_seed(1)
        assert torch.equal(expected, loaded(batch).logits)
    for mode in model.prediction_modes:
        predictions = loaded.predict(batch, top_k=1, mode=mode)
        assert len(predictions) == 2
        assert all(isinstance(answer, str) and 0.0 <= score <= 1.0 for (answer, score), in predictions)


FUSION_FIELDS = {"image_size", "text_encoder", "resize", "image_training", "text_training", "trainable_blocks",
                 "text_lora", "gradient_checkpointing", "max_question_tokens", "hidden_size", "attention_hops", "scene_vector", "dropout",
                 "question_prior", "lr", "encoder_lr", "batch_size"}


@pytest.mark.parametrize(("name", "own_fields", "resize"), [
    ("resnet_bert", {"image_encoder", "image_weights", "image_widths"}, "squash"),
    ("pubmedclip", {"vision_model", "vision_hidden_size", "vision_layers", "vision_heads", "vision_intermediate_size",
                    "patch_size"}, "crop"),
])
def test_fusion_families_share_one_config_base(name, own_fields, resize):
    """The fusion settings and their checks are declared once (FusionConfig); each family adds only
    its image encoder's fields. A checkpoint stores every field, so the set must not change."""
    config_class = get_family(name).config_class
    assert issubclass(config_class, FusionConfig) and {f.name for f in fields(FusionConfig)} == FUSION_FIELDS
    assert {f.name for f in fields(config_class)} == FUSION_FIELDS | own_fields
    tiny = tiny_config(name)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        replace(tiny, dropout=1.0)
    with pytest.raises(ValueError, match=r"resize must be one of \('squash', 'crop', 'pad'\), got 'fit'"):
        replace(tiny, resize="fit")
    assert tiny.resize == resize


def test_unknown_family_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown model 'gpt'; choices: \['pubmedclip', 'qwen2vl', 'resnet_bert', 'vilt'\]"):
        get_family("gpt")


def test_vilt_lora_trains_only_adapters_and_the_new_head():
    settings = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("query", "value"))
    config = family_config("vilt", hidden_size=64, layers=2, heads=2, intermediate_size=128, lora=settings,
                           question_prior=False)
    model = Vilt.build(config, ANSWERS)
    counts = model.parameter_counts()
    hidden, layers = 64, 2
    lora = layers * 2 * settings.r * (hidden + hidden)  # query and value: A (r x in) + B (out x r)
    head = (hidden * 2 * hidden + 2 * hidden) + 2 * (2 * hidden) + (2 * hidden * len(ANSWERS) + len(ANSWERS))
    assert counts["trainable_params"] == lora + head
    out = model(model.collate(items(64)))
    out.loss.backward()
    assert all(p.grad is None for n, p in model.backbone.named_parameters() if "lora_" not in n)


def test_a_saved_vilt_adapter_loads_with_peft(tmp_path):
    """The checkpoint's LoRA adapters are in peft's own format: PeftModel.from_pretrained puts them
    on a base ViLT and gives the trained backbone's outputs."""
    from peft import PeftModel
    from transformers import ViltModel

    settings = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("query", "value"))
    config = family_config("vilt", hidden_size=64, layers=2, heads=2, intermediate_size=128, lora=settings,
                           question_prior=False)
    torch.manual_seed(0)
    model = Vilt.build(config, ANSWERS)
    base_state = {k.replace(".base_layer", ""): v.clone() for k, v in model.backbone.get_base_model().state_dict().items()
                  if "lora_" not in k}
    with torch.no_grad():  # trained adapters: B starts at zero, which would hide a failed load
        for name, p in model.backbone.named_parameters():
            if "lora_B" in name:
                p.normal_()
    save_checkpoint(model.eval(), tmp_path / "ckpt", info={})
    base = ViltModel(model.backbone_config)
    base.load_state_dict(base_state)
    loaded = PeftModel.from_pretrained(base, tmp_path / "ckpt/adapters/backbone").eval()
    batch = model.collate(items(64))
    inputs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                  token_type_ids=batch["token_type_ids"], pixel_values=batch["pixel_values"].float() / 127.5 - 1.0)
    plain = ViltModel(model.backbone_config).eval()
    plain.load_state_dict(base_state)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).pooler_output, model.backbone(**inputs).pooler_output)
        assert not torch.allclose(plain(**inputs).pooler_output, model.backbone(**inputs).pooler_output)


def test_vilt_question_length_is_capped_at_40_positions():
    with pytest.raises(ValueError, match=r"max_question_tokens must be in \[1, 40\]"):
        family_config("vilt", max_question_tokens=64)
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        family_config("vilt", image_size=100, patch_size=32)


def save_bert_base(directory: Path) -> Path:
    BertModel(BertConfig()).save_pretrained(directory)
    AutoTokenizer.from_pretrained(resolve_pretrained(MINILM)).save_pretrained(directory)  # the uncased vocabulary
    return directory


@pytest.mark.slow
def test_pubmedclip_paper_architecture_through_the_hub_code_path(tmp_path):
    """A CLIP ViT-B/32 (CLIPConfig() defaults: the PubMedCLIP architecture) saved whole, as the hub
    checkpoint is; its vision tower taken by the same from_pretrained call that takes the hub id."""
    CLIPModel(CLIPConfig()).save_pretrained(tmp_path / "clip")
    config = family_config("pubmedclip", profile="paper", vision_model=str(tmp_path / "clip"),
                           text_encoder=str(save_bert_base(tmp_path / "bert")))
    model = PubMedClip.build(config, ANSWERS)
    vision = model.image_encoder.vision.config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.patch_size) == (768, 12, 32)
    counts = model.parameter_counts()
    assert 190e6 < counts["total_params"] < 200e6  # ViT-B/32 vision (87.5M) + BERT-base (109.5M) + head
    out = model(model.collate(items(224)))
    out.loss.backward()
    assert out.logits.shape == (2, len(ANSWERS))


@pytest.mark.slow
def test_vilt_paper_architecture_through_the_hub_code_path(tmp_path):
    """ViltConfig() defaults are ViLT-B/32; saved as ViltForQuestionAnswering, as the VQA checkpoint is."""
    ViltForQuestionAnswering(ViltConfig(num_labels=3129)).save_pretrained(tmp_path / "vilt")
    AutoTokenizer.from_pretrained(resolve_pretrained(MINILM)).save_pretrained(tmp_path / "vilt")
    settings = LoraSettings(r=8, alpha=16, dropout=0.05, target_modules=("query", "value"))
    config = family_config("vilt", profile="paper", backbone=str(tmp_path / "vilt"), tokenizer=str(tmp_path / "vilt"),
                           lora=settings)
    model = Vilt.build(config, ANSWERS)
    counts = model.parameter_counts()
    # ViLT-B/32 backbone with pooler: 111.2M (the "~87M" often quoted leaves out the 23.4M word embeddings)
    assert 111e6 < counts["total_params"] < 114e6
    lora = 12 * 2 * 8 * (768 + 768)
    head = (768 * 1536 + 1536) + 2 * 1536 + (1536 * len(ANSWERS) + len(ANSWERS))
    assert counts["trainable_params"] == lora + head
    out = model(model.collate(items(224)))
    out.loss.backward()
    assert out.logits.shape == (2, len(ANSWERS))
