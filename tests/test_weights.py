"""Named weights: resumable, atomic download into the cache; a clear error offline; the bundled default."""
import http.server
import threading

import pytest

from rlse_fast import weights
from rlse_fast.errors import UserError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; counts the bytes it sends.

    The count is taken before the write: the client can finish reading before
    this thread runs again, so counting after the write raced the assertion.
    """

    sent = 0

    def do_GET(self):  # noqa: N802 (http.server's naming)
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        type(self).sent += len(body)
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _RangeHandler.sent = 0
    yield f"http://127.0.0.1:{httpd.server_address[1]}/net.pkl"
    httpd.shutdown()
    httpd.server_close()


def test_download_is_atomic_and_resumes(server, tmp_path):
    target = tmp_path / "cache" / "net.pkl"
    part = target.with_name("net.pkl.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:300_000])  # an earlier, interrupted download
    weights.download(server, target, quiet=True)
    assert target.read_bytes() == PAYLOAD
    assert not part.exists()
    assert _RangeHandler.sent == len(PAYLOAD) - 300_000  # only the rest was fetched


def test_offline_error_names_the_file_and_place(tmp_path):
    target = tmp_path / "net.pkl"
    with pytest.raises(UserError, match=str(target)):
        weights.download("http://127.0.0.1:9/none.pkl", target, quiet=True, timeout=5)
    assert not target.exists()


def test_resolve_names_paths_and_default(tmp_path, rlse_home, monkeypatch):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"x")
    assert weights.resolve(str(f)) == f
    with pytest.raises(UserError, match="unknown weights"):
        weights.resolve("ffhq2048")
    with pytest.raises(UserError, match="not found"):
        weights.resolve(str(tmp_path / "missing.pkl"))
    # Default: the bundled prior unless FFHQ is in the cache.
    name, notice = weights.default_weights()
    if weights.bundled_path("celeba64").is_file():
        assert name == "celeba64" and "ffhq" in notice
    cached = weights.cache_path("ffhq")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert weights.default_weights() == ("ffhq", None)
    assert weights.resolve("ffhq") == cached
