"""The generative family: loss masking, learning, generation, and the LoRA adapter checkpoint."""

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from configs import family_config
from vqalab.data.schema import Record
from vqalab.models.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint
from vqalab.models.lora import LoraSettings
from vqalab.models.qwen2vl import IGNORE, Qwen2VL, Qwen2VLFamilyConfig

ANSWERS = ["yes", "no", "red circle", "blue"]
TINY = family_config("qwen2vl", image_size=56, hidden_size=64, layers=1, heads=2, kv_heads=1, intermediate_size=128,
                     mrope_section=(4, 6, 6), vision_embed_dim=32, vision_depth=1, vision_heads=2,
                     tokenizer_vocab_size=300, max_new_tokens=4, lr=3e-3)


def items():
    generator = torch.Generator().manual_seed(0)
    rows = [("is there a circle?", "yes", "closed"), ("what is the shape and its colour in the picture?", "red circle", "open")]
    return [{"image": torch.randint(0, 256, (3, 56, 56), dtype=torch.uint8, generator=generator), "question": q,
             "answer": a, "answer_type": t, "label": 0} for q, a, t in rows]


def build(config=TINY):
    torch.manual_seed(0)
    return Qwen2VL.build(config, ANSWERS, train_texts=[i["question"] for i in items()])


def test_collator_masks_exactly_the_prompt_and_the_padding():
    model = build()
    batch = model.collate(items())
    tokenizer = model.tokenizer
    for row, item in enumerate(items()):
        kept = batch["labels"][row][batch["labels"][row] != IGNORE].tolist()
        assert kept == tokenizer(item["answer"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
        # every position that is not the answer is masked: the prompt (with its image tokens) and the padding
        answer_positions = (batch["labels"][row] != IGNORE).nonzero().flatten()
        assert batch["attention_mask"][row][answer_positions].all()
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()
    assert (batch["input_ids"] == model.model_config.image_token_id).sum() > 0
    # generation prompts are left-padded, so every row ends where the answer would start
    assert batch["prompt_attention_mask"][:, -1].all()


def test_train_steps_lower_the_loss_on_a_fixed_batch():
    model = build()
    batch = model.collate(items())
    optimizer = torch.optim.AdamW(model.param_groups())
    losses = []
    for _ in range(8):
        loss = model(batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_generation_and_candidate_ranking_return_answers():
    model = build().eval()
    batch = model.collate(items())
    generated = model.predict(batch, mode="generate")
    assert len(generated) == 2 and all(isinstance(a, str) for (a, _), in generated)
    ranked = model.predict(batch, top_k=len(ANSWERS), mode="candidates")
    assert {a for a, _ in ranked[1]} == set(ANSWERS)  # an open question ranks every training answer
    assert abs(sum(p for _, p in ranked[0]) - 1.0) < 1e-5
    with pytest.raises(ValueError, match="predicts in modes"):
        model.predict(batch, mode="classify")


def test_lora_adapter_checkpoint_holds_only_the_adapters(tmp_path):
    """A pretrained base (here a tiny one saved with save_pretrained, loaded by the hub-id code path)
    is not copied into the checkpoint: only the LoRA adapters are, and they reload exactly."""
    base = build()
    base.model.save_pretrained(tmp_path / "base")
    base.processor.save_pretrained(tmp_path / "base")
    config = family_config("qwen2vl", image_size=56, checkpoint=str(tmp_path / "base"), max_new_tokens=4, lr=3e-3,
                           lora=LoraSettings(r=4, alpha=8, dropout=0.0,
                                             target_modules=("q_proj", "k_proj", "v_proj", "o_proj")))
    model = Qwen2VL.build(config, ANSWERS)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    batch = model.collate(items())
    optimizer = torch.optim.AdamW(model.param_groups())
    model(batch).loss.backward()
    optimizer.step()
    model.eval()
    save_checkpoint(model, tmp_path / "ckpt", info={})
    assert set(load_file(tmp_path / "ckpt" / WEIGHTS_FILE)) == trainable
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.equal(model(batch).logits, loaded(batch).logits)
    # The adapters in peft's own format load onto the pretrained base with PeftModel.from_pretrained.
    from peft import PeftModel
    from transformers import Qwen2VLForConditionalGeneration

    peft_model = PeftModel.from_pretrained(Qwen2VLForConditionalGeneration.from_pretrained(tmp_path / "base"),
                                           tmp_path / "ckpt/adapters/model").eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        torch.testing.assert_close(peft_model(**inputs).logits, model.model(**inputs).logits)


def test_qlora_prepares_the_quantised_base_as_peft_says(monkeypatch):
    """load_in_4bit: peft's prepare_model_for_kbit_training runs on the base before LoRA is applied
    (4-bit weights need CUDA and bitsandbytes; here the preparation is recorded, not run)."""
    import peft

    prepared = []

    def prepare(model, use_gradient_checkpointing):
        prepared.append((type(model).__name__, use_gradient_checkpointing))
        return model

    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", prepare)
    lora = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj"))
    model = build(replace(TINY, lora=lora, load_in_4bit=True, gradient_checkpointing=True))
    assert prepared == [("Qwen2VLForConditionalGeneration", True)]
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)


def test_candidate_ranking_follows_the_answer_likelihood():
    """The ranked scores are the softmax of each candidate's summed log-likelihood, which equals
    -(mean loss x number of answer tokens) from a forward pass with that candidate as the answer."""
    model = build().eval()
    item = items()[1]  # an open question: every training answer is a candidate
    ranked = dict(model.predict(model.collate([item]), top_k=len(ANSWERS), mode="candidates")[0])
    log_likelihoods = []
    for answer in ANSWERS:
        batch = model.collate([{**item, "answer": answer}])
        n_tokens = int((batch["labels"] != IGNORE).sum())
        with torch.no_grad():
            log_likelihoods.append(-model(batch).loss.item() * n_tokens)
    expected = torch.tensor(log_likelihoods).softmax(0)
    for answer, probability in zip(ANSWERS, expected.tolist()):
        assert ranked[answer] == pytest.approx(probability, abs=1e-4)


def records(rows):
    return [Record(id=str(i), image=f"{i}.png", question=q, answer=a, answer_raw=a, split="train", answer_type=t)
            for i, (q, a, t) in enumerate(rows)]


def test_closed_questions_rank_the_answers_closed_questions_take_in_train(tmp_path):
    """Not only yes/no: VQA-RAD's closed questions also answer "left" or "diffuse"."""
    model = build()
    train = SimpleNamespace(records=records([("is it a circle?", "yes", "closed"), ("is it left or right?", "blue", "closed"),
                                             ("is it round?", "no", "closed"), ("what colour?", "red circle", "open")]))
    assert model.prepare_for_training(train, None, blind=None) == {"closed_candidates": 3}
    model.eval()
    batch = model.collate(items())
    ranked = model.predict(batch, top_k=len(ANSWERS), mode="candidates")
    assert {a for a, _ in ranked[0]} == {"yes", "no", "blue"}
    assert abs(sum(p for _, p in ranked[0]) - 1.0) < 1e-5
    save_checkpoint(model, tmp_path / "ckpt", info={})
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    assert loaded.closed_answers == ["blue", "no", "yes"]
    reloaded = loaded.predict(batch, top_k=len(ANSWERS), mode="candidates")[0]
    assert [a for a, _ in reloaded] == [a for a, _ in ranked[0]]


def test_prompt_fields_cut_from_the_full_encoding_equal_a_separate_prompt_encoding():
    """The collator encodes images once; its generation prompts equal the processor's own
    left-padded encoding of the prompts alone (questions of different lengths: real padding)."""
    model = build()
    batch = model.collate(items())
    prompts = model.encode(model.prompts(items()), [i["image"] for i in items()], padding_side="left")
    assert batch["prompt_input_ids"].shape[1] < batch["input_ids"].shape[1]
    assert (prompts["attention_mask"] == 0).any()  # the short question's prompt is padded
    for name in ("input_ids", "attention_mask", "mm_token_type_ids"):
        assert torch.equal(batch[f"prompt_{name}"], prompts[name]), name


def lora_model(tmp_path):
    base = build()
    base.model.save_pretrained(tmp_path / "base")
    base.processor.save_pretrained(tmp_path / "base")
    config = family_config("qwen2vl", image_size=56, checkpoint=str(tmp_path / "base"), max_new_tokens=4, lr=3e-3,
                           lora=LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj")))
    return Qwen2VL.build(config, ANSWERS)


def vision_tower(model):
    return next(m for m in model.modules() if type(m).__name__.startswith("Qwen2VisionTransformer"))


def test_a_frozen_vision_tower_runs_without_grad_even_when_inputs_are_made_to_require_grad(tmp_path):
    """With LoRA on the LLM the vision tower is frozen: gradient checkpointing's
    enable_input_require_grads must not pull it into the graph; the adapters still learn."""
    model = lora_model(tmp_path)
    assert model.vision_without_grad
    model.model.enable_input_require_grads()  # what gradient checkpointing turns on (on a GPU)
    outputs = []
    vision_tower(model).register_forward_hook(lambda module, args, out: outputs.append(out))
    model(model.collate(items())).loss.backward()
    # (get_image_features later splits pooler_output per image, in place: a tuple by now)
    assert outputs and not outputs[0].last_hidden_state.requires_grad
    assert not any(t.requires_grad for t in outputs[0].pooler_output)
    lora_grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_grads and all(g is not None and g.abs().sum() > 0 for g in lora_grads)


def test_a_trained_vision_tower_keeps_its_gradients():
    model = build()  # random-init, no LoRA: every weight trains, the vision tower's too
    assert not model.vision_without_grad
    model(model.collate(items())).loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vision_tower(model).parameters())


def test_attention_is_sdpa_without_flash_attention_on_the_cpu(tmp_path):
    from vqalab.models.qwen2vl import attention_implementation, load_options

    assert attention_implementation(None) == "sdpa"
    model = lora_model(tmp_path)
    assert model.model.config._attn_implementation in ("sdpa", "flash_attention_2")
    assert load_options(model.config)["attn_implementation"] == attention_implementation(None)


def test_answer_part_credit_is_refused_for_the_generative_family():
    with pytest.raises(ValueError, match="applies to classifier families; qwen2vl generates its answers"):
        build().credit_answer_parts(0.5)
