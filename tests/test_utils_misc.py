"""mrcnn.utils: weight download (offline), batch_slice, Dataset re-export."""
import io
import urllib.error
import urllib.request

import numpy as np
import pytest

from mrcnn import utils


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("Name or service not known")


def test_download_offline_raises_clear_error_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    target = tmp_path / "mask_rcnn_coco.h5"
    with pytest.raises(RuntimeError) as info:
        utils.download_trained_weights(str(target), verbose=0)
    message = str(info.value)
    assert utils.COCO_MODEL_URL in message
    assert "cannot reach" in message and "local path" in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    assert list(tmp_path.iterdir()) == []


class _FakeResponse(io.BytesIO):
    """A urlopen() result that serves `payload` and may fail after it."""

    def __init__(self, payload, fail_after=False):
        super().__init__(payload)
        self.fail_after = fail_after

    def read(self, *args):
        data = super().read(*args)
        if not data and self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return data


def test_download_interrupted_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: _FakeResponse(b"x" * 100000, fail_after=True))
    target = tmp_path / "weights.h5"
    with pytest.raises(RuntimeError, match="cannot reach"):
        utils.download_trained_weights(str(target), verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_download_writes_the_file(tmp_path, monkeypatch, capsys):
    requested = []

    def fake_urlopen(url, *args, **kwargs):
        requested.append(url)
        return _FakeResponse(b"HDF5 payload")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    target = tmp_path / "mask_rcnn_coco.h5"
    utils.download_trained_weights(str(target))
    assert requested == [utils.COCO_MODEL_URL]
    assert target.read_bytes() == b"HDF5 payload"
    assert [p.name for p in tmp_path.iterdir()] == ["mask_rcnn_coco.h5"]
    assert "done downloading" in capsys.readouterr().out


def test_coco_model_url_is_upstream_release():
    assert utils.COCO_MODEL_URL == ("https://github.com/matterport/Mask_RCNN/"
                                    "releases/download/v2.0/mask_rcnn_coco.h5")


def test_batch_slice_single_and_multiple_outputs():
    tf = pytest.importorskip("tensorflow")
    x = tf.constant(np.arange(12, dtype=np.float32).reshape(3, 4))
    y = tf.constant([[1.0], [2.0], [3.0]])
    doubled = utils.batch_slice(x, lambda a: a * 2, 3)
    np.testing.assert_array_equal(doubled.numpy(), x.numpy() * 2)
    total, first = utils.batch_slice([x, y], lambda a, b: (tf.reduce_sum(a) + b, a[:1]), 3,
                                     names=["total", "first"])
    np.testing.assert_array_equal(total.numpy(), [[7.0], [24.0], [41.0]])
    np.testing.assert_array_equal(first.numpy(), x.numpy()[:, :1])


def test_dataset_is_reexported():
    from mrcnn.dataset import Dataset
    assert utils.Dataset is Dataset
