"""What happens when things go wrong: an unreachable hub, impossible LoRA settings."""

import time

import pytest

from vqalab.models.resnet_bert import ResNetBert, ResNetBertConfig


def test_paper_model_without_network_fails_fast_and_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = ResNetBertConfig(image_size=224, image_encoder="resnet_small", text_encoder="bert-base-uncased")
    start = time.perf_counter()
    with pytest.raises(OSError) as caught:
        ResNetBert.build(config, ["yes", "no"])
    message = str(caught.value)
    assert "'bert-base-uncased'" in message and "resnet_bert.<profile>.text_encoder" in message
    assert "HF_HUB_OFFLINE=1" in message and "save_pretrained" in message
    assert time.perf_counter() - start < 10


def test_unreachable_hub_without_offline_mode_also_fails_fast(monkeypatch):
    """HF_HUB_OFFLINE unset and the hub out of reach (here: a closed local port): one probe, then the
    local cache only - no retries against the network."""
    from vqalab.models import pretrained

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(pretrained, "hub_probe_url", lambda: "http://127.0.0.1:9/")
    config = ResNetBertConfig(image_size=224, image_encoder="resnet_small", text_encoder="bert-base-uncased")
    start = time.perf_counter()
    with pytest.raises(OSError, match=r"could not load 'bert-base-uncased' \(set by resnet_bert.<profile>.text_encoder\)"):
        ResNetBert.build(config, ["yes", "no"])
    assert time.perf_counter() - start < 10
    assert pretrained.hub_reachable("http://127.0.0.1:9/") is False
