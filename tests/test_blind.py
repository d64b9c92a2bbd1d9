"""The blind (question-only) baseline and the question prior built on it (fusion classifiers, vilt)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from configs import family_config
from vqalab.data.dataset import VQADataset
from vqalab.data.features import CachedFeatures, compute_features
from vqalab.data.schema import Record
from vqalab.data.vocab import AnswerVocab
from vqalab.evaluation.blind import BlindBaseline, fit_question_classifier, normalise_rows
from vqalab.models.checkpoint import load_checkpoint, save_checkpoint
from vqalab.models.resnet_bert import ResNetBert, ResNetBertConfig
from vqalab.models.vilt import Vilt, ViltFamilyConfig


def noisy_clusters(n, answers, rng, noise):
    centres = np.eye(len(answers), 8) * 3
    labels = rng.integers(0, len(answers), n)
    return centres[labels] + noise * rng.standard_normal((n, 8)), [answers[i] for i in labels]


def test_C_is_chosen_on_validation_and_duplicates_merge_into_weights():
    rng = np.random.default_rng(0)
    answers = ["a", "b", "c"]
    x, y = noisy_clusters(60, answers, rng, noise=2.0)
    x, y = np.concatenate([x, x[:20]]), y + y[:20]  # repeated questions, as templated data sets have
    x_val, y_val = noisy_clusters(40, answers, rng, noise=2.0)
    grid = (0.01, 1.0, 100.0)
    chosen = fit_question_classifier(x, y, x_val, y_val, answers=answers, c_grid=grid)
    log_losses = {}
    for c in grid:  # the same fit, on every row without merging
        plain = LogisticRegression(C=c, max_iter=2000).fit(normalise_rows(x), y)
        probabilities = plain.predict_proba(normalise_rows(x_val))
        columns = [list(plain.classes_).index(a) for a in y_val]
        log_losses[c] = -np.mean(np.log(probabilities[np.arange(len(y_val)), columns]))
        if c == chosen.C:
            assert chosen.predict(x_val) == list(plain.predict(normalise_rows(x_val)))
            np.testing.assert_allclose(chosen.weight, plain.coef_, atol=1e-3)
            assert chosen.val_accuracy == pytest.approx(np.mean(plain.predict(normalise_rows(x_val)) == np.array(y_val)))
    assert chosen.C == min(log_losses, key=log_losses.get)
    assert chosen.val_log_loss == pytest.approx(min(log_losses.values()), rel=1e-3)


def test_validation_log_loss_scores_only_the_answers_the_classifier_can_give():
    rng = np.random.default_rng(2)
    answers = ["a", "b"]
    x, y = noisy_clusters(40, answers, rng, noise=1.0)
    x_val, y_val = noisy_clusters(10, answers, rng, noise=1.0)
    clf = fit_question_classifier(x, y, x_val, y_val, answers=answers)
    assert clf.log_loss(np.concatenate([x_val, x_val[:3]]), y_val + ["never seen"] * 3) == pytest.approx(
        clf.log_loss(x_val, y_val))
    with pytest.raises(ValueError, match="no validation answer is in the answer vocabulary"):
        clf.log_loss(x_val[:2], ["never seen", "nor this"])


def test_two_answers_and_answers_never_seen_in_training():
    rng = np.random.default_rng(1)
    x, y = noisy_clusters(40, ["yes", "no"], rng, noise=0.5)
    clf = fit_question_classifier(x, y, x, y, answers=["yes", "no", "maybe"])
    assert clf.val_accuracy > 0.9
    assert clf.predict(x) == y
    assert (clf.logits(x).argmax(1) != 2).all()  # "maybe" has no training question


QUESTIONS = ["is the shape red?", "is the shape blue?", "what colour is the shape?", "how many shapes are there?"]


def toy_data(model_config, rng):
    """Answers follow the question mostly (what a blind classifier can learn), images are noise."""
    answers = {"is the shape red?": "yes", "is the shape blue?": "no", "what colour is the shape?": "red",
               "how many shapes are there?": "2"}
    records = []
    for split, n in (("train", 40), ("val", 16)):
        for i in range(n):
            question = QUESTIONS[i % 4]
            records.append(Record(id=f"{split}-{i}", image=f"{split}/{i}.png", question=question,
                                  answer=answers[question], answer_raw="", split=split,
                                  answer_type="closed" if i % 4 < 2 else "open"))
    images = rng.integers(0, 256, (len(records), 3, 32, 32), dtype=np.uint8)
    rows = {r.image: i for i, r in enumerate(records)}
    vocab = AnswerVocab.build(r.answer for r in records if r.split == "train")
    model = MODEL_CLASSES[type(model_config)].build(model_config, vocab.answers)
    tensors, fingerprints = compute_features(model, images, QUESTIONS, batch_size=8, device=torch.device("cpu"))
    features = CachedFeatures.from_tensors(tensors, fingerprints, QUESTIONS)
    split = {s: VQADataset([r for r in records if r.split == s], images, rows, vocab, features) for s in ("train", "val")}
    return model, split["train"], split["val"]


MINILM = "packaged:all-MiniLM-L6-v2"
CONFIG = family_config("resnet_bert", image_size=32, image_encoder="resnet_small", image_weights=None,
                       image_widths=(8, 8, 16, 16), hidden_size=16, dropout=0.1, lr=1e-3)
VILT_CONFIG = family_config("vilt", image_size=32, hidden_size=32, layers=1, heads=2, intermediate_size=64,
                            encoder_lr=1e-4)
MODEL_CLASSES = {ResNetBertConfig: ResNetBert, ViltFamilyConfig: Vilt}


@pytest.mark.parametrize("config", [CONFIG, VILT_CONFIG], ids=["resnet_bert", "vilt"])
def test_question_prior_starts_at_the_blind_baseline_and_is_kept_fixed(tmp_path, config):
    torch.manual_seed(0)
    model, train, val = toy_data(config, np.random.default_rng(0))
    assert model.starts_as_baseline
    # The blind stage's classifier, fitted on the same sentence encoder's embeddings of the questions.
    blind = fit_question_classifier(train.question_features().numpy(), [r.answer for r in train.records],
                                    val.question_features().numpy(), [r.answer for r in val.records],
                                    answers=train.vocab.answers, encoder=MINILM)
    with pytest.raises(ValueError, match="the blind baseline was fitted on 'other/encoder' embeddings"):
        model.prepare_for_training(train, val, blind=BlindBaseline(replace(blind, encoder="other/encoder"), {}))
    figures = model.prepare_for_training(train, val, blind=BlindBaseline(blind, {}))
    assert set(figures) == {"question_prior_C", "question_prior_val_log_loss", "question_prior_val_accuracy"} and figures["question_prior_val_accuracy"] == 1.0
    model.eval()
    batch = model.collate([val[i] for i in range(len(val))])
    predicted = [top[0][0] for top in model.predict(batch)]
    assert predicted == blind.predict(val.question_features().numpy())
    prior_ids = {id(p) for p in model.question_prior.parameters()}
    assert not prior_ids & {id(p) for group in model.param_groups() for p in group["params"]}
    save_checkpoint(model, tmp_path / "ckpt", info={})
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    assert torch.equal(loaded.question_prior.weight, model.question_prior.weight)
    with torch.no_grad():
        assert torch.allclose(loaded(batch).logits, model(batch).logits)
    # Without the cache (vqalab predict) the model encodes the questions itself, as the features stage did.
    uncached = VQADataset(val.records, val.images, val.image_row, val.vocab)
    uncached_batch = loaded.collate([uncached[i] for i in range(len(uncached))])
    assert "question_features" not in uncached_batch
    with torch.no_grad():
        torch.testing.assert_close(loaded(uncached_batch).logits, model(batch).logits, atol=2e-3, rtol=0)


@pytest.mark.parametrize("config", [CONFIG, VILT_CONFIG], ids=["resnet_bert", "vilt"])
def test_without_question_prior_the_head_is_not_offset(config):
    model, train, val = toy_data(replace(config, question_prior=False), np.random.default_rng(0))
    assert model.question_prior is None and model.prepare_for_training(train, val, blind=None) == {}
    assert not model.starts_as_baseline


def test_vilt_caches_question_features_only_for_its_prior():
    assert VILT_CONFIG.feature_spec(seed=0) == {"question": {"text_encoder": MINILM, "max_question_tokens": 40}}
    assert replace(VILT_CONFIG, question_prior=False).feature_spec(seed=0) == {}
    # What builds the question encoder, not what trains the model: a new learning rate keeps the cache's fingerprint.
    assert VILT_CONFIG.feature_spec(seed=0) == replace(VILT_CONFIG, lr=0.5, encoder_lr=0.5).feature_spec(seed=0)
    with pytest.raises(ValueError, match="question_prior reads the questions with question_encoder, which is null"):
        replace(VILT_CONFIG, question_encoder=None)


def test_the_report_says_when_a_model_is_below_its_blind_baseline():
    from vqalab.report.report import blind_verdict

    looks = {"shuffled_image_accuracy": 0.5, "image_sensitivity": 0.25}
    below = blind_verdict({"image_gain": -0.042, **looks}, {"blind_C": 10.0})
    assert below.startswith("**Warning: this model scores 4.20 pts below the blind baseline: it is not using the image.**")
    assert "C = 10 chosen by validation log-loss" in below
    above = blind_verdict({"image_gain": 0.013, "image_gain_ci95": [-0.01, 0.03], **looks},
                          {"blind_C": 3.0, "image_gain_p": 0.21})
    assert "Warning" not in above
    assert ("+1.30 pts (95% interval [-1.00, +3.00] points, paired over the test questions, p = 0.21: no significant "
            "difference). One training run: seed variation is not counted;") in above
    clear = blind_verdict({"image_gain": 0.05, "image_gain_ci95": [0.02, 0.08], **looks},
                          {"blind_C": 3.0, "image_gain_p": 0.00123})
    assert "+5.00 pts (95% interval [+2.00, +8.00] points, paired over the test questions, p = 0.00123)." in clear
    assert "accuracy is 50.00% and 25.00% of the answers change." in above
    blind = blind_verdict({"image_gain": 0.0, "image_gain_ci95": [0.0, 0.0], "shuffled_image_accuracy": 0.5,
                           "image_sensitivity": 0.0}, {"blind_C": 3.0, "image_gain_p": 1.0})
    assert "0.00% of the answers change: the model does not read the image.**" in blind


def test_indexed_batches_equal_the_collated_batches_of_cached_items():
    """The fast path for fully cached data sets gives the batches the family's collator gives."""
    from torch.utils.data import DataLoader

    from vqalab.data.dataset import IndexedBatches

    model, train, _ = toy_data(CONFIG, np.random.default_rng(0))
    assert train.fully_cached()
    fast = list(IndexedBatches(train, batch_size=6))
    slow = list(DataLoader(train, batch_size=6, shuffle=False, collate_fn=model.collate))
    assert len(fast) == len(slow) == 7
    for a, b in zip(fast, slow):
        assert set(a) == set(b) == {"labels", "image_features", "question_features"}
        assert all(torch.equal(a[k], b[k]) for k in a)
    # Shuffled: every item once per epoch, the same order for the same generator seed.
    epochs = [list(IndexedBatches(train, batch_size=6, shuffle=True, generator=torch.Generator().manual_seed(3)))
              for _ in range(2)]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(*epochs) for k in a)
    rows = torch.cat([batch["question_features"] for batch in epochs[0]])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, torch.cat([b["question_features"] for b in fast]).tolist()))
