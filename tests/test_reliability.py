"""What happens when things go wrong: an unreachable hub, pretrained models that cannot be had."""

import time

import pytest

from vqalab.config import from_mapping
from vqalab.models.resnet_bert import ResNetBert, ResNetBertConfig

PAPER_SECTION = {"image_size": 224, "image_encoder": "resnet_small", "text_encoder": "bert-base-uncased"}


def paper_config():
    return from_mapping(ResNetBertConfig, PAPER_SECTION, "resnet_bert.paper")


def test_paper_model_without_network_fails_fast_and_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OSError) as caught:
        ResNetBert.build(paper_config(), ["yes", "no"])
    message = str(caught.value)
    assert "'bert-base-uncased'" in message and "(set by resnet_bert.paper.text_encoder)" in message
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
    with pytest.raises(OSError, match=r"could not load 'bert-base-uncased' \(set by resnet_bert.paper.text_encoder\)"):
        ResNetBert.build(paper_config(), ["yes", "no"])
    assert time.perf_counter() - start < 10
    assert pretrained.hub_reachable("http://127.0.0.1:9/") is False


def test_every_missing_pretrained_source_is_reported_before_any_work(monkeypatch, tmp_path):
    """The params stage checks all the sources of the chosen profile, not only the first."""
    import yaml

    from vqalab import pretrained
    from vqalab.models import sources
    from vqalab.resolve import load_params
    from conftest import ROOT

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(pretrained, "hub_reachable", lambda url, timeout=3.0: False)
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw.update(profile="paper", dataset="vqa_rad")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(OSError) as caught:
        sources.check_pretrained_sources(load_params(tmp_path / "params.yaml"))
    message = str(caught.value)
    assert message.startswith("3 pretrained model(s) of this run cannot be had here")
    for param in ("resnet_bert.paper.text_encoder = 'bert-base-uncased'", "resnet_bert.paper.image_weights = "
                  "'torchvision:resnet50'", "evaluate.sbert_model.paper = 'sentence-transformers/paraphrase-MiniLM-L6-v2'"):
        assert param in message
    raw.update(profile="tiny")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    sources.check_pretrained_sources(load_params(tmp_path / "params.yaml"))  # packaged: nothing to fetch
