"""What happens when things go wrong: an unreachable hub, pretrained models that cannot be had."""

import time

import pytest

from configs import family_config

from vqalab.models.resnet_bert import ResNetBert


def paper_config():
    """The paper profile's text encoder (from the hub) beside a random-init CNN."""
    return family_config("resnet_bert", profile="paper", image_encoder="resnet_small", image_weights=None)


def test_paper_model_without_network_fails_fast_and_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OSError) as caught:
        ResNetBert.build(paper_config(), ["yes", "no"])
    message = str(caught.value)
    assert "'bert-base-uncased'" in message and "(set by model.text_encoder)" in message
    # HF_HUB_OFFLINE is already set: the message says so instead of advising to set it.
    assert "HF_HUB_OFFLINE=1 is set, so only the Hugging Face cache was searched" in message
    assert "set HF_HUB_OFFLINE=1" not in message and "save_pretrained" in message
    assert time.perf_counter() - start < 10


def test_unreachable_hub_without_offline_mode_also_fails_fast(monkeypatch):
    """HF_HUB_OFFLINE unset and the hub out of reach (here: a closed local port): one probe, then the
    local cache only - no retries against the network."""
    from vqalab import pretrained

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(pretrained, "hub_probe_url", lambda: "http://127.0.0.1:9/")
    start = time.perf_counter()
    with pytest.raises(OSError, match=r"could not load 'bert-base-uncased' \(set by model.text_encoder\)"):
        ResNetBert.build(paper_config(), ["yes", "no"])
    assert time.perf_counter() - start < 10
    assert pretrained.hub_reachable("http://127.0.0.1:9/") is False


def test_every_missing_pretrained_source_is_reported_before_any_work(monkeypatch, tmp_path):
    """A stage checks all the sources it loads, not only the first."""
    from configs import composed_params

    from vqalab import pretrained
    from vqalab.models import sources
    from vqalab.models.registry import chosen_family_config
    from vqalab.params import Params

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(pretrained, "hub_reachable", lambda url, timeout=3.0: False)
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path))

    def check(*overrides):
        params = Params(composed_params("dataset=vqa_rad", *overrides))
        sources.check_pretrained_sources({**sources.family_sources(chosen_family_config(params)),
                                          "evaluate.sbert_model": params.sbert_model})

    with pytest.raises(OSError) as caught:
        check("profile=paper")
    message = str(caught.value)
    assert message.startswith("3 pretrained model(s) of this run cannot be had here")
    for param in ("model.text_encoder = 'bert-base-uncased'", "model.image_weights = 'torchvision:resnet50'",
                  "evaluate.sbert_model = 'sentence-transformers/paraphrase-MiniLM-L6-v2'"):
        assert param in message
    check("profile=tiny")  # packaged: nothing to fetch
