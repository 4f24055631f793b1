"""``metaspin data download`` against a loopback HTTP server serving the shared MNIST files (and
corrupted copies); nothing leaves the machine. Data-root resolution order."""
from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from metaspin_snn.cli import main as cli_main
from metaspin_snn.data.download import REMOTE, download
from metaspin_snn.data.idx import DatasetError, data_root_choice


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP Range support (206 Partial Content), counting the requests."""
    log = []

    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):
        _Handler.log.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def mirror(tmp_path, data_root):
    """A loopback server over a copy of the shared MNIST files; yields (url, served folder)."""
    served = tmp_path / "served"
    shutil.copytree(Path(data_root) / "mnist", served)
    handler = functools.partial(_Handler, directory=str(served))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    _Handler.log = []
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/", served
    finally:
        srv.shutdown()
        srv.server_close()


def test_download_then_check_passes(mirror, tmp_path, capsys):
    url, _ = mirror
    root = tmp_path / "R"
    assert cli_main(["data", "download", "mnist", "--root", str(root), "--mirror", url]) == 0
    names = sorted(p.name for p in (root / "mnist").iterdir())
    assert names == sorted(REMOTE["mnist"].files)                    # no partial files left
    for n, sha in REMOTE["mnist"].files.items():
        assert hashlib.sha256((root / "mnist" / n).read_bytes()).hexdigest() == sha
    capsys.readouterr()
    assert cli_main(["data", "check", "--data-root", str(root)]) == 0  # mnist verified; the rest optional
    out = capsys.readouterr().out
    assert "nmnist-small  absent" in out and "shd           absent" in out
    assert f"data root: {root} (--data-root)" in out
    assert out.count("mnist         train OK") == 1 and out.count("mnist         test  OK") == 1
    # a second download finds the verified files and fetches nothing
    n_req = len(_Handler.log)
    assert cli_main(["data", "download", "mnist", "--root", str(root), "--mirror", url]) == 0
    assert len(_Handler.log) == n_req


def test_corrupted_mirror_file_exits_2_and_leaves_no_file(mirror, tmp_path, capsys):
    url, served = mirror
    f = served / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF
    f.write_bytes(bytes(data))
    root = tmp_path / "R"
    assert cli_main(["data", "download", "mnist", "--root", str(root), "--mirror", url]) == 2
    err = capsys.readouterr().err
    assert "t10k-labels-idx1-ubyte.gz" in err and "sha256" in err
    assert not (root / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not any(p.name.endswith(".part") for p in (root / "mnist").iterdir())


def test_partial_download_is_resumed_with_a_range_request(mirror, tmp_path):
    url, served = mirror
    root = tmp_path / "R"
    name = "train-labels-idx1-ubyte.gz"
    full = (served / name).read_bytes()
    (root / "mnist").mkdir(parents=True)
    (root / "mnist" / f".{name}.part").write_bytes(full[:10_000])  # as left by an interrupted download
    download("mnist", root, mirror=url)
    assert (root / "mnist" / name).read_bytes() == full
    assert (f"/{name}", "bytes=10000-") in _Handler.log


def test_offline_message_names_url_file_and_destination(tmp_path):
    root = tmp_path / "R"
    with pytest.raises(DatasetError) as e:
        download("mnist", root, mirror="http://127.0.0.1:9/", timeout=2.0)   # port 9: nothing listens
    msg = str(e.value)
    assert "http://127.0.0.1:9/train-images-idx3-ubyte.gz" in msg
    assert str(root / "mnist" / "train-images-idx3-ubyte.gz") in msg and "by hand" in msg
    assert cli_main(["data", "download", "nope", "--root", str(root)]) == 2


def test_a_corrupt_file_already_in_place_is_refused(mirror, tmp_path):
    url, _ = mirror
    root = tmp_path / "R"
    (root / "mnist").mkdir(parents=True)
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="corrupt file"):
        download("mnist", root, mirror=url)


def test_data_root_resolution_order(tmp_path, monkeypatch):
    import metaspin_snn.data.idx as idx
    user = tmp_path / "user"
    monkeypatch.setattr(idx, "user_data_dir", lambda: user)
    monkeypatch.delenv("METASPIN_DATA", raising=False)
    shared = idx._checkout_data()
    # no per-user data yet: the checkout's ../shared/data (this checkout has it)
    assert shared is not None and data_root_choice() == (shared, "the checkout's ../shared/data")
    user.mkdir()
    (user / "mnist").mkdir()                       # something in the per-user directory: it wins
    assert data_root_choice()[0] == user
    monkeypatch.setenv("METASPIN_DATA", str(tmp_path / "env"))
    assert data_root_choice() == (tmp_path / "env", "$METASPIN_DATA")
    assert data_root_choice(tmp_path / "x") == (tmp_path / "x", "--data-root")
    monkeypatch.delenv("METASPIN_DATA")
    monkeypatch.setattr(idx, "_checkout_data", lambda: None)
    shutil.rmtree(user)
    p, why = data_root_choice()
    assert p == user and "metaspin data download" in why           # an installed package, no data yet


def test_pinned_checksums_cover_every_file_of_each_dataset():
    """Four IDX files per image dataset, each with a 64-hex sha256 (MNIST's equal the reader's table:
    one source of truth for what `data check` verifies); two archives per event dataset, each with
    the 32-hex md5 tonic pins, one URL each, unpacking to the split folder tonic reads."""
    from metaspin_snn.data.events import EVENT_DATASETS
    from metaspin_snn.data.idx import IMAGE_DATASETS, MNIST_SHA256, SPLIT_FILES
    want = {f + ".gz" for pair in SPLIT_FILES.values() for f in pair}
    assert set(REMOTE) == set(IMAGE_DATASETS) | set(EVENT_DATASETS)
    for name in IMAGE_DATASETS:
        ds = REMOTE[name]
        assert set(ds.files) == want and ds.digest == "sha256", name
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in ds.files.values())
        assert ds.urls and all(u.endswith("/") for u in ds.urls)
    for name, spec in EVENT_DATASETS.items():
        ds = REMOTE[name]
        assert ds.digest == "md5" and len(ds.files) == 2 and ds.folder == spec.folder, name
        assert all(len(h) == 32 and int(h, 16) >= 0 for h in ds.files.values())
        assert sorted(ds.extract.values()) == sorted(spec.split_paths.values()), name
        assert all(len(ds.urls_of(f)) >= 1 and ds.urls_of(f)[0].startswith("https://") for f in ds.files)
        assert ds.urls_of("x.zip", "http://m/") == ("http://m/x.zip",)
    assert all(MNIST_SHA256[k] == v for k, v in REMOTE["mnist"].files.items())
    assert len({h for ds in REMOTE.values() for h in ds.files.values()}) == 18   # no copy-paste slip


def _write_idx(directory: Path, n_train: int = 60, n_test: int = 20, side: int = 28, seed: int = 0) -> None:
    """A small MNIST-format dataset (gzip IDX files) with 10 classes."""
    import gzip

    import numpy as np
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        lab = (np.arange(n) % 10).astype(np.uint8)
        head_i = (2051).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in img.shape)
        head_l = (2049).to_bytes(4, "big") + n.to_bytes(4, "big")
        (directory / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(head_i + img.tobytes()))
        (directory / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(head_l + lab.tobytes()))


def test_image_streams_run_on_any_mnist_format_directory(tmp_path):
    """dataset = a directory of IDX files: split and permuted streams load it, tasks name it."""
    from metaspin_snn.continual.config import RunConfig
    from metaspin_snn.continual.runner import build_stream, run_stream
    d = tmp_path / "myfashion"
    _write_idx(d)
    tasks = build_stream(RunConfig(stream="split-mnist", n_tasks=5, dataset=str(d), progress=False))
    assert [t.name for t in tasks][:2] == ["split-myfashion-0/1", "split-myfashion-2/3"]
    assert tasks[0].size("train") == 12 and tasks[0].size("test") == 4
    tasks = build_stream(RunConfig(stream="pmnist", n_tasks=2, dataset=str(d), progress=False))
    assert tasks[0].name == "pmyfashion-0 (identity)" and tasks[1].name == "pmyfashion-1"
    res = run_stream(RunConfig(stream="split-mnist", n_tasks=5, dataset=str(d), hidden=(8,), num_steps=2,
                               batch_size=20, progress=False, checkpoint=False, out=str(tmp_path / "o")))
    assert res.task_names[0] == "split-myfashion-0/1" and len(res.matrix) == 5


def test_named_datasets_are_verified_and_missing_ones_say_how_to_get_them(tmp_path):
    from metaspin_snn.continual.config import RunConfig
    from metaspin_snn.data.idx import load_image_dataset
    with pytest.raises(DatasetError, match="metaspin data download fashion-mnist"):
        load_image_dataset("fashion-mnist", tmp_path, "train")
    _write_idx(tmp_path / "kmnist")                 # right layout, wrong bytes: refused by the pinned sha256
    with pytest.raises(DatasetError, match="sha256"):
        load_image_dataset("kmnist", tmp_path, "test")
    with pytest.raises(ValueError, match="'dataset'"):
        RunConfig(stream="split-nmnist", dataset="kmnist")
    with pytest.raises(ValueError, match="'dataset'"):
        RunConfig(stream="pmnist", dataset="cifar10")
    d = tmp_path / "small"
    _write_idx(d, side=14)
    with pytest.raises(DatasetError, match="28×28"):
        load_image_dataset(str(d), None, "train")
