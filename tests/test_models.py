"""resnet_bert in both profiles, built offline: forward, backward, checkpoint round trip."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel

from vqalab.data.features import CachedFeatures, compute_features
from vqalab.data.vocab import IGNORE_INDEX
from vqalab.models.base import PartCredit, classification_loss
from vqalab.models.checkpoint import load_checkpoint, save_checkpoint
from vqalab.models.resnet_bert import ResNetBert
from vqalab.pretrained import resolve_pretrained
from configs import family_config

ANSWERS = ["yes", "no", "red", "circle"]
# The family's conf/ values with a small random-init CNN, the image encoder trained, a small head.
TINY = family_config("resnet_bert", image_size=64, image_encoder="resnet_small", image_weights=None, image_training="full",
                     text_training="frozen", trainable_blocks=1, hidden_size=32, dropout=0.1, question_prior=False, lr=1e-3)


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
    assert model.classifier[-1].weight.grad is not None and model.image_encoder.stages[0][0].weight.grad is not None
    counts = model.parameter_counts()
    assert counts["trainable_params"] == counts["total_params"] - sum(p.numel() for p in model.text_encoder.parameters())


def trainable(module):
    return {name for name, p in module.named_parameters() if p.requires_grad}


def test_training_modes_choose_what_trains():
    full = ResNetBert.build(replace(TINY, text_training="full"), ANSWERS)
    assert trainable(full.image_encoder) == {n for n, _ in full.image_encoder.named_parameters()}
    assert trainable(full.text_encoder) == {n for n, _ in full.text_encoder.named_parameters()}

    partial = ResNetBert.build(replace(TINY, image_training="partial", text_training="partial", trainable_blocks=2), ANSWERS)
    assert {n.split(".")[1] for n in trainable(partial.image_encoder)} == {"3", "4"}  # the last 2 of 5 stages
    assert {n.split(".")[2] for n in trainable(partial.text_encoder)} == {"4", "5"}  # the last 2 of 6 layers

    frozen = ResNetBert.build(replace(TINY, image_training="frozen"), ANSWERS)
    assert not trainable(frozen.image_encoder) and not trainable(frozen.text_encoder)
    assert trainable(frozen) == {n for n, _ in frozen.named_parameters()
                                 if n.split(".")[0] in ("image_norm", "text_norm", "image_proj", "text_proj", "image_queries", "classifier")}

    lora = ResNetBert.build(replace(TINY, text_training="lora", text_lora=replace(TINY.text_lora, r=4)), ANSWERS)
    assert trainable(lora.text_encoder) and all("lora_" in n for n in trainable(lora.text_encoder))
    adapters = {id(p) for p in lora.text_encoder.parameters() if p.requires_grad}
    new_group = lora.param_groups()[0]
    assert adapters <= {id(p) for p in new_group["params"]} and new_group["lr"] == TINY.lr


def test_frozen_blocks_keep_batch_norm_statistics_in_training_mode():
    model = ResNetBert.build(replace(TINY, image_training="partial", trainable_blocks=1), ANSWERS).train()
    stem_bn, last_bn = model.image_encoder.stages[0][1], model.image_encoder.stages[-1].bn1
    before = stem_bn.running_mean.clone(), last_bn.running_mean.clone()
    model(model.collate(items(64)))
    assert torch.equal(stem_bn.running_mean, before[0]), "a frozen block's batch norm must not update"
    assert not torch.equal(last_bn.running_mean, before[1]), "a trained block's batch norm updates"


def test_cached_features_give_the_encoders_outputs():
    torch.manual_seed(0)
    model = ResNetBert.build(replace(TINY, image_training="frozen"), ANSWERS).eval()
    batch_items = items(64)
    images = torch.stack([item["image"] for item in batch_items]).numpy()
    questions = [item["question"] for item in batch_items]
    tensors, fingerprints = compute_features(model, images, questions, batch_size=1, device=torch.device("cpu"))
    assert set(fingerprints) == {"image", "question"} and tensors["image"].dtype == torch.float16
    cache = CachedFeatures(fingerprints, image=tensors["image"], question=tensors["question"],
                           question_row={q: i for i, q in enumerate(questions)})
    cache.check(model, where="test")
    cached_items = [{**item, **cache.item_features(item["question"], row)} for row, item in enumerate(batch_items)]
    cached_batch = model.collate(cached_items)
    assert "pixel_values" not in cached_batch and "input_ids" not in cached_batch
    with torch.no_grad():
        direct, cached = model(model.collate(batch_items)).logits, model(cached_batch).logits
    assert torch.allclose(direct, cached, atol=1e-3)  # features are stored as float16

    torch.manual_seed(1)  # another random-init image encoder
    other = ResNetBert.build(replace(TINY, image_training="frozen"), ANSWERS)
    with pytest.raises(ValueError, match="rerun the features stage"):
        cache.check(other, where="test")


def test_gradient_checkpointing_gives_the_same_gradients():
    def gradients(checkpointing):
        torch.manual_seed(0)
        model = ResNetBert.build(replace(TINY, text_training="full", gradient_checkpointing=checkpointing, dropout=0.0), ANSWERS)
        model(model.collate(items(64))).loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and any(n.startswith("text_encoder.encoder") for n in plain)
    assert all(torch.allclose(plain[n], checkpointed[n], atol=1e-5) for n in plain)


def test_efficientnet_lite0_loads_its_packaged_imagenet_weights():
    config = replace(TINY, image_encoder="efficientnet_lite0", image_weights="imagenet")
    pretrained = ResNetBert.build(config, ANSWERS)
    random_init = ResNetBert.build(replace(config, image_weights=None), ANSWERS)
    first = "stages.0.conv.weight"
    assert not torch.equal(pretrained.image_encoder.state_dict()[first], random_init.image_encoder.state_dict()[first])
    assert pretrained.image_encoder(torch.zeros(1, 3, 64, 64)).shape == (1, 4, 1280)  # a 2 x 2 grid of tokens
    assert ResNetBert.pixel_stats(config) == ((0.5,) * 3, (0.5,) * 3)


def test_questions_outside_the_vocabulary_give_a_zero_loss_that_still_backpropagates():
    """A batch of answers outside the vocabulary still takes part in backward (in DDP every rank must)."""
    model = ResNetBert.build(TINY, ANSWERS)
    batch = model.collate([{**item, "label": IGNORE_INDEX} for item in items(64)])
    loss = model(batch).loss
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert all(p.grad is not None and not p.grad.any() for p in model.classifier.parameters())


def test_part_credit_spreads_a_list_answers_share_over_its_parts():
    """The loss equals cross-entropy against the written-out targets: "chair, table" keeps half its
    target and gives chair and table a quarter each; other answers stay one-hot; ignored labels count not."""
    answers = ["chair", "table", "chair, table", "lamp", "lamp, vase"]
    logits = torch.randn(5, len(answers), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([2, 0, IGNORE_INDEX, 3, 4])
    targets = torch.tensor([[0.25, 0.25, 0.5, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 1, 0],
                            [0, 0, 0, 0.5, 0.5]])
    known = labels != IGNORE_INDEX
    expected = F.cross_entropy(logits[known], targets[known])
    part_credit = PartCredit(answers, 0.5)
    assert part_credit.list_answers == 2
    assert torch.allclose(classification_loss(logits, labels, part_credit), expected)
    assert not torch.allclose(classification_loss(logits, labels), expected)  # one-hot differs on list answers


def test_a_classifier_trains_on_part_credit_targets_that_its_checkpoint_leaves_out():
    model = ResNetBert.build(TINY, [*ANSWERS, "red, circle"])
    batch = model.collate([{**item, "label": 4} for item in items(64)])
    model.credit_answer_parts(0.5)
    output = model(batch)
    targets = torch.tensor([[0, 0, 0.25, 0.25, 0.5]]).expand(len(output.logits), -1)  # red, circle: a quarter each
    assert torch.allclose(output.loss, F.cross_entropy(output.logits, targets))
    assert not any(name.startswith("part_credit") for name in model.state_dict())
    model.credit_answer_parts(0.0)
    assert model.part_credit is None
    plain = ResNetBert.build(TINY, ANSWERS)  # no list answer: the targets stay one-hot
    plain.credit_answer_parts(0.5)
    assert plain.part_credit is None


@pytest.mark.parametrize("hops, scene", [(1, False), (2, True)])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, hops, scene):
    torch.manual_seed(0)
    model = ResNetBert.build(replace(TINY, attention_hops=hops, scene_vector=scene), ANSWERS).eval()
    assert len(model.image_queries) == hops
    batch = model.collate(items(64))
    save_checkpoint(model, tmp_path / "ckpt", info={"note": "test"})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["family"] == "resnet_bert" and meta["answers"] == ANSWERS and meta["note"] == "test"
    assert loaded.config == replace(TINY, attention_hops=hops, scene_vector=scene)
    with torch.no_grad():
        assert torch.equal(model(batch).logits, loaded(batch).logits)
    assert loaded.predict(batch, top_k=2)[0][0][0] in ANSWERS
    assert not list(tmp_path.glob(".ckpt*")), "no temporary folder may be left behind"


def test_a_second_attention_hop_asks_with_what_the_first_found():
    """Stacked attention: the second hop's query is the question plus the first hop's attended
    image, so its attention differs from the first hop's and the answer scores change."""
    torch.manual_seed(0)
    one = ResNetBert.build(TINY, ANSWERS).eval()
    two = ResNetBert.build(replace(TINY, attention_hops=2), ANSWERS).eval()
    two.load_state_dict({**one.state_dict(), **{k: v for k, v in two.state_dict().items() if "image_queries.1" in k}})
    batch = one.collate(items(64))
    with torch.no_grad():
        assert not torch.allclose(one(batch).logits, two(batch).logits)


def test_the_scene_vector_reaches_the_head():
    """With scene_vector the head also reads the mean of every image token and its product with
    the question: cutting those inputs changes the answer scores."""
    torch.manual_seed(0)
    model = ResNetBert.build(replace(TINY, scene_vector=True), ANSWERS).eval()
    assert model.classifier[0].in_features == 5 * TINY.hidden_size
    batch = {"image_features": torch.randn(2, 5, model.image_proj.in_features),
             "question_features": torch.randn(2, model.text_proj.in_features)}
    with torch.no_grad():
        with_scene = model(batch).logits
        model.classifier[0].weight[:, 3 * TINY.hidden_size:] = 0.0
        assert not torch.allclose(with_scene, model(batch).logits)


def test_paper_architecture_builds_through_the_hub_code_path(tmp_path):
    """ResNet50 + a bert-base-sized BERT (BertConfig() defaults) saved locally and loaded by path,
    the same from_pretrained call that takes the hub id bert-base-uncased."""
    bert_dir = tmp_path / "bert-base"
    BertModel(BertConfig()).save_pretrained(bert_dir)
    tokenizer_source = resolve_pretrained("packaged:all-MiniLM-L6-v2")  # the same uncased 30,522 vocabulary
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(bert_dir)
    config = family_config("resnet_bert", profile="paper", image_weights=None, text_encoder=str(bert_dir))
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
    config = family_config("resnet_bert", image_size=64, image_encoder="resnet18", image_weights=str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        ResNetBert.build(config, ANSWERS)


def test_questions_are_tokenised_once_and_padded_as_the_tokenizer_pads_them():
    model = ResNetBert.build(replace(TINY, max_question_tokens=8), ANSWERS)
    questions = ["is there a red shape?", "what?", "how many shapes are in this image, roughly speaking?", "what?"]
    expected = model.tokenizer(questions, padding=True, truncation=True, max_length=8, return_tensors="pt")
    got = model.tokenize(questions)
    assert torch.equal(got["input_ids"], expected["input_ids"]) and torch.equal(got["attention_mask"], expected["attention_mask"])
    class Spy:  # the model's tokenizer, counting what it is asked
        def __init__(self, tokenizer):
            self.tokenizer, self.pad_token_id, self.calls = tokenizer, tokenizer.pad_token_id, []

        def __call__(self, texts, **kwargs):
            self.calls.append(texts)
            return self.tokenizer(texts, **kwargs)

    model.tokenizer = spy = Spy(model.tokenizer)
    model.tokenize(["what?", "a new question?"])
    assert spy.calls == [["a new question?"]]  # only the question not seen before


def test_partial_training_runs_the_trainable_stages_on_the_frozen_stages_cached_output():
    """Under partial, the features stage runs the CNN's frozen first stages once; the model runs its
    trainable last stages on that output and answers as it does from pixels; training them leaves
    the cache valid; a batch by image holds each image once."""
    torch.manual_seed(0)
    config = replace(TINY, image_training="partial", trainable_blocks=2)
    assert config.feature_spec(seed=0)["image"]["trainable_blocks"] == 2
    model = ResNetBert.build(config, ANSWERS).eval()
    assert model.cached_image_stages == 3 and model.batches_by_image  # stem and 2 of 4 blocks, of 5 stages
    batch_items = items(64)
    images = torch.stack([item["image"] for item in batch_items]).numpy()
    questions = [item["question"] for item in batch_items]
    tensors, fingerprints = compute_features(model, images, questions, batch_size=1, device=torch.device("cpu"))
    assert tensors["image"].shape == (2, 64, 8, 8)  # the feature map after the second block, not tokens
    cache = CachedFeatures.from_tensors(tensors, fingerprints, questions)
    cache.check(model, where="test")
    cached_items = [{**item, **cache.item_features(item["question"], row)} for row, item in enumerate(batch_items)]
    cached_batch = model.collate(cached_items)
    with torch.no_grad():
        direct, cached = model(model.collate(batch_items)).logits, model(cached_batch).logits
        # By image: both questions about image 1, given once.
        by_image = model({"image_features": cache.image[[1]], "image_index": torch.tensor([0, 0]),
                          "question_features": cached_batch["question_features"]}).logits
        per_question = model({"image_features": cache.image[[1, 1]],
                              "question_features": cached_batch["question_features"]}).logits
    assert torch.allclose(direct, cached, atol=1e-3)  # features are stored as float16
    assert torch.allclose(by_image, per_question, atol=1e-6) and not torch.allclose(by_image, cached, atol=1e-4)

    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(cached_batch).loss.backward()
    assert model.image_encoder.stages[3].conv1.weight.grad is not None
    assert all(p.grad is None for stage in model.image_encoder.stages[:3] for p in stage.parameters())
    before = model.image_encoder.stages[4].conv1.weight.clone()
    optimizer.step()
    assert not torch.equal(before, model.image_encoder.stages[4].conv1.weight)
    cache.check(model, where="test")  # the frozen stages, which the cache holds, did not move

    other = ResNetBert.build(replace(config, trainable_blocks=1), ANSWERS)
    with pytest.raises(ValueError, match="rerun the features stage"):
        cache.check(other, where="test")  # a cache ending elsewhere is refused
