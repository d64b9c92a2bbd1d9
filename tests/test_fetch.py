"""Downloads against a local HTTP server: checksum, resume, retries, and the message when a source is down."""

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vqalab.data import fetch
from vqalab.data.fetch import SourceUnavailable, download, hf_dataset_snapshot

PAYLOAD = bytes(range(256)) * 64


class RangeHandler(BaseHTTPRequestHandler):
    """Serves PAYLOAD at any path, honouring `Range: bytes=N-`; /flaky fails the first request."""

    requests: list[str] = []
    failures_left = 0

    def do_GET(self):
        RangeHandler.requests.append(self.headers.get("Range", ""))
        if self.path == "/flaky" and RangeHandler.failures_left > 0:
            RangeHandler.failures_left -= 1
            self.send_error(503)
            return
        start = 0
        if (header := self.headers.get("Range")) and header.startswith("bytes="):
            start = int(header[6:].split("-")[0])
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.requests = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(fetch.time, "sleep", lambda seconds: None)


def test_download_verifies_checksum_and_reuses_the_file(server, tmp_path):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    path = download(f"{server}/file.bin", tmp_path / "file.bin", param="datasets.x.source", sha256=digest)
    assert path.read_bytes() == PAYLOAD
    download(f"{server}/file.bin", tmp_path / "file.bin", param="datasets.x.source", sha256=digest)
    assert len(RangeHandler.requests) == 1  # complete and verified: not fetched again


def test_download_resumes_a_partial_file(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])
    path = download(f"{server}/file.bin", tmp_path / "file.bin", param="p")
    assert RangeHandler.requests == ["bytes=1000-"]
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "file.bin.part").exists()


def test_download_retries_a_failed_request(server, tmp_path):
    RangeHandler.failures_left = 1
    assert download(f"{server}/flaky", tmp_path / "f.bin", param="p").read_bytes() == PAYLOAD
    assert len(RangeHandler.requests) == 2


def test_checksum_mismatch_leaves_nothing_and_says_how_to_use_a_local_copy(server, tmp_path):
    with pytest.raises(SourceUnavailable, match=r"checksum mismatch.*set dataset.source to the local"):
        download(f"{server}/file.bin", tmp_path / "file.bin", param="dataset.source", sha256="0" * 64, retries=2)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_source_fails_fast_naming_it(tmp_path):
    start = time.perf_counter()
    with pytest.raises(SourceUnavailable, match=r"could not download http://127.0.0.1:9/qa.txt after 3 tries.*dataset.source"):
        download("http://127.0.0.1:9/qa.txt", tmp_path / "qa.txt", param="dataset.source", timeout=2)
    assert time.perf_counter() - start < 10


def test_hub_data_set_offline_names_repo_and_param(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceUnavailable, match=r"BoKelvin/SLAKE.*set dataset.source to a local copy"):
        hf_dataset_snapshot("BoKelvin/SLAKE", param="dataset.source")
