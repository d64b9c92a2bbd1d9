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
