"""Checkpoints by URL: a loopback HTTP server started here serves generated files; download into torch.hub's cache
(TORCH_HOME) and strict load, reuse without a second request, truncated transfers, 404s, sha256 and hostile pickles."""
import argparse
import hashlib
import io
import os
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from backbone import ConvNeXtV2
from backbone.checkpoint import CheckpointError, load_pretrained
from backbone.zoo import ZOO, ZooEntry, ZooError, resolve
from tools import convert_checkpoint as convert_tool


class Server:
    """Serves `files` (path → bytes); paths under /cut/ send the full Content-Length but only half the body."""

    def __init__(self):
        self.files, self.requests = {}, Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests[self.path] += 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, 'Not Found')
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if self.path.startswith('/cut/') else body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)  # port 0: an ephemeral port
        self.url = f'http://127.0.0.1:{self.httpd.server_port}'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.url + path


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))  # torch.hub's cache: <TORCH_HOME>/hub/checkpoints
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def cache_dir(tmp_path) -> str:
    return str(tmp_path / 'torch' / 'hub' / 'checkpoints')


def cached_files(tmp_path) -> list:
    """Files in the cache other than the download lock."""
    d = cache_dir(tmp_path)
    return sorted(f for f in os.listdir(d) if not f.endswith('.lock')) if os.path.isdir(d) else []


def to_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def official_atto() -> tuple[dict, bytes]:
    """An atto IN-1K fine-tuned checkpoint in the official layout (`model`, `model_ema`, a pickled Namespace)."""
    torch.manual_seed(0)
    sd = ConvNeXtV2('atto', num_classes=10).state_dict()
    for v in sd.values():
        v.normal_()  # random everywhere (GRN γ/β too), so a partial load cannot pass
    return sd, to_bytes({'model': sd, 'model_ema': sd, 'args': argparse.Namespace(model='convnextv2_atto')})


def test_download_strict_load_and_reuse(server, tmp_path):
    sd, body = official_atto()
    url = server.serve('/convnextv2/im1k/convnextv2_atto_1k_224_ema.pt', body)
    for _ in range(2):  # the second model reads the cached file: no second request
        model = ConvNeXtV2('atto', num_classes=10, init_cfg=dict(type='Pretrained', checkpoint=url))
        model.init_weights()
        assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())
    out = convert_tool.main([url, str(tmp_path / 'atto.pth')])  # tools/convert_checkpoint.py takes the URL too
    assert out['meta'] == dict(source_format='official', arch='atto', source=url)
    assert server.requests['/convnextv2/im1k/convnextv2_atto_1k_224_ema.pt'] == 1
    path = os.path.join(cache_dir(tmp_path), 'convnextv2_atto_1k_224_ema.pt')
    assert cached_files(tmp_path) == ['convnextv2_atto_1k_224_ema.pt'] and resolve(url) == path
    with open(path, 'rb') as f:
        assert f.read() == body


def test_tools_test_loads_a_url_from_the_cache(server, tmp_path, monkeypatch):
    """tools/test.py CKPT (runtime.test): a URL becomes the cached file the Runner's load_from reads."""
    import runtime.launch

    class Built(Exception):
        pass

    def build_runner(cfg):
        raise Built(cfg.load_from)
    monkeypatch.setattr(runtime.launch, 'build_runner', build_runner)
    url = server.serve('/x/epoch_1.pth', to_bytes({'state_dict': {}}))
    config = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'det_configs', 'mask_rcnn_cnx2_a.py')
    with pytest.raises(Built, match='hub/checkpoints/epoch_1.pth$'):
        runtime.launch.test(config, url, work_dir=str(tmp_path / 'work'))
    assert server.requests['/x/epoch_1.pth'] == 1


def test_zoo_name_downloads_its_url(server, tmp_path, monkeypatch):
    """A zoo name goes through the same download; a ConvNeXt V1 file (LayerScale, no GRN) stays a strict error."""
    sd = {k: v for k, v in ConvNeXtV2('atto').state_dict().items() if '.grn.' not in k and not k.startswith('norm')}
    sd.update({f'stages.{i}.0.gamma': torch.ones(d) for i, d in enumerate((40, 80, 160, 320))})  # V1 LayerScale
    url = server.serve('/convnext/convnext_atto_1k_224_ema.pth', to_bytes({'model': sd}))
    monkeypatch.setitem(ZOO, 'convnext_atto.in1k', ZooEntry(url, 'V1 layout', '–'))
    with pytest.raises(CheckpointError, match=r'convnext_atto\.in1k.*V1 .*does not fit a ConvNeXt V2'):
        load_pretrained(ConvNeXtV2('atto'), 'convnext_atto.in1k')
    assert cached_files(tmp_path) == ['convnext_atto_1k_224_ema.pth']


def test_truncated_transfer_leaves_nothing(server, tmp_path):
    _, body = official_atto()
    url = server.serve('/cut/convnextv2_atto_1k_224_ema.pt', body)
    for attempt in (1, 2):  # nothing was cached, so the second call asks again
        with pytest.raises(ZooError, match=rf'ended after {len(body) // 2} of {len(body)} bytes'):
            resolve(url, progress=False)
        assert cached_files(tmp_path) == [] and server.requests['/cut/convnextv2_atto_1k_224_ema.pt'] == attempt


def test_404_names_url_cache_path_and_fix(server, tmp_path):
    url = server.url + '/convnextv2/pt_only/missing.pt'
    path = os.path.join(cache_dir(tmp_path), 'missing.pt')
    with pytest.raises(CheckpointError, match='HTTP 404') as err:
        load_pretrained(ConvNeXtV2('atto'), url)
    assert url in str(err.value) and f'cache at {path}' in str(err.value) and f'copy it to {path}' in str(err.value)
    assert cached_files(tmp_path) == []


def test_unreachable_host_names_url_and_cache_path(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    with ThreadingHTTPServer(('127.0.0.1', 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_port  # bound, then closed: nothing listens there
    url = f'http://127.0.0.1:{port}/convnextv2_atto_1k_224_fcmae.pt'
    with pytest.raises(ZooError, match='download failed .*Connection refused') as err:
        resolve(url, progress=False)
    assert url in str(err.value) and os.path.join(cache_dir(tmp_path), 'convnextv2_atto_1k_224_fcmae.pt') in str(
        err.value)


def test_sha256(server, tmp_path):
    body = to_bytes({'model': {'w': torch.ones(3)}})
    url = server.serve('/x/ones.pt', body)
    digest, wrong = hashlib.sha256(body).hexdigest(), '0' * 64
    with pytest.raises(ZooError, match=f'sha256 of the download is {digest}, expected {wrong}.*not kept'):
        resolve(url, sha256=wrong, progress=False)
    assert cached_files(tmp_path) == []
    assert resolve(url, sha256=digest.upper(), progress=False).endswith('ones.pt')
    with pytest.raises(ZooError, match=f'sha256 of the cached file is {digest}'):  # checked on reuse too
        resolve(url, sha256=wrong, progress=False)


class Hostile:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").close()',)


def test_hostile_pickle_behind_url_is_refused(server, tmp_path):
    marker = str(tmp_path / 'pwned')
    url = server.serve('/evil/convnextv2_atto_1k_224_ema.pt', to_bytes({'model': {}, 'payload': Hostile(marker)}))
    with pytest.raises(CheckpointError, match=r'refused to unpickle (builtins\.)?exec'):
        load_pretrained(ConvNeXtV2('atto'), url)
    assert not os.path.exists(marker)
