import gzip
import struct

import numpy as np
import pytest
import torch

from smt.data import CLASS_NAMES, ScaledFashionMNIST, load_fashion_mnist, read_idx


def _write_idx(path, array, compress):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(raw)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_gzip_and_plain(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(5,), dtype=np.uint8)
    ints = np.arange(-3, 3, dtype=">i4").reshape(2, 3)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    _write_idx(tmp_path / "ints", ints, compress)
    np.testing.assert_array_equal(read_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "ints"), ints.astype(np.int32))
    x, y = load_fashion_mnist("test", data_dir=tmp_path)
    np.testing.assert_array_equal(x, images)
    assert y.dtype == np.int64 and y.tolist() == labels.tolist()


def test_read_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "bad")
    _write_idx(tmp_path / "short", np.zeros((4, 3), np.uint8), False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-2])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist("train", data_dir=tmp_path)


def _items(n=12, seed=0):
    """Random items with a zero border of varying width, so tight boxes differ from the pasted square."""
    rng = np.random.default_rng(seed)
    items = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        top, left, h, w = rng.integers(2, 8), rng.integers(0, 6), rng.integers(6, 18), rng.integers(8, 22)
        items[i, top:top + h, left:left + w] = rng.integers(40, 256, size=(h, w))
    return items, rng.integers(0, 10, size=n)


def test_canvases_deterministic_per_seed_and_batch():
    items, labels = _items()
    a = ScaledFashionMNIST(items, labels, canvas_size=64, seed=3, flip=True)
    b = ScaledFashionMNIST(items, labels, canvas_size=64, seed=3, flip=True)
    c = ScaledFashionMNIST(items, labels, canvas_size=64, seed=4, flip=True)
    x1, y1, b1 = a.render([0, 5, 7], epoch=2)
    x2, y2, b2 = b.render(torch.arange(12), epoch=2)
    assert x1.shape == (3, 3, 64, 64) and x1.dtype == torch.float32 and 0 <= x1.min() and x1.max() <= 1
    torch.testing.assert_close(x1, x2[[0, 5, 7]], rtol=0, atol=0)  # independent of batch composition
    torch.testing.assert_close(b1, b2[[0, 5, 7]], rtol=0, atol=0)
    assert y1.tolist() == [labels[0], labels[5], labels[7]]
    assert not torch.equal(x2, c.render(torch.arange(12), epoch=2)[0])  # another seed, other canvases
    assert not torch.equal(x2, a.render(torch.arange(12), epoch=3)[0])  # another epoch, other canvases


def test_boxes_contain_item_pixels_and_are_tight():
    items, labels = _items(24)
    ds = ScaledFashionMNIST(items, labels, canvas_size=112, seed=1, texture_prob=1.0, flip=True)
    x, _, boxes = ds.render(torch.arange(24))
    # The item's own pixels: what changes when the item is blanked out.
    blank = ScaledFashionMNIST(np.zeros_like(items), labels, canvas_size=112, seed=1, texture_prob=1.0, flip=True)
    x0, _, _ = blank.render(torch.arange(24))
    item_pixels = (x - x0).abs().amax(1) > 1e-6  # (B, H, W)
    for i in range(24):
        ys, xs = torch.nonzero(item_pixels[i], as_tuple=True)
        assert len(xs) > 0
        bx0, by0, bx1, by1 = boxes[i].tolist()
        assert bx0 <= xs.min() and xs.max() < bx1 and by0 <= ys.min() and ys.max() < by1
        # Tight: every edge row/column of the box holds item pixels.
        assert xs.min() == bx0 and xs.max() == bx1 - 1 and ys.min() == by0 and ys.max() == by1 - 1


def test_scales_cover_the_range_and_low_res_is_the_same_canvas():
    items, labels = _items(200)
    ds = ScaledFashionMNIST(items, labels, canvas_size=112, scale_range=(0.5, 3.0), seed=0)
    side = ds.params(0).size * 112 / 28
    assert 0.5 <= side.min() < 0.6 and 2.8 < side.max() <= 3.0
    hi, _, _ = ds.render(torch.arange(4))
    lo, _, _ = ds.render(torch.arange(4), canvas_size=56)
    down = torch.nn.functional.avg_pool2d(hi, 2)
    assert (lo - down).abs().mean() < 0.02  # the 56-px render is the 112-px canvas, downsampled


def test_bad_arguments():
    items, labels = _items(4)
    with pytest.raises(ValueError, match="fit"):
        ScaledFashionMNIST(items, labels, scale_range=(0.5, 5.0))
    with pytest.raises(ValueError, match="len\\(labels\\)"):
        ScaledFashionMNIST(items, labels[:3])
    assert len(CLASS_NAMES) == 10


def test_crop_is_a_window_of_the_canvas_at_its_pixel_scale():
    items, labels = _items(64)
    ds = ScaledFashionMNIST(items, labels, canvas_size=112, seed=3, flip=True)
    full, _, full_boxes = ds.render(torch.arange(64), epoch=1)
    crop, crop_labels, crop_boxes = ds.render(torch.arange(64), epoch=1, canvas_size=56, crop=True)
    assert crop.shape == (64, 3, 56, 56) and torch.equal(crop_labels, torch.as_tensor(labels[:64]).long())
    p = ds.params(1)
    fits = p.size * 112 <= 0.9 * 56
    assert 10 < int(fits.sum()) < 60  # both kinds of item are in the batch
    # An item that fits keeps its size in pixels (to a pixel of resampling) ...
    wh_full, wh_crop = full_boxes[:, 2:] - full_boxes[:, :2], crop_boxes[:, 2:] - crop_boxes[:, :2]
    assert (wh_full[fits] - wh_crop[fits]).abs().max() <= 1
    # ... and the crop is the full canvas's pixels in a window that holds the item.
    side = torch.clamp(p.size / 0.9, min=0.5, max=1.0)
    lo = (p.pos + p.size.unsqueeze(1) - side.unsqueeze(1)).clamp(min=0)
    origin = lo + p.window * (torch.minimum(p.pos, 1 - side.unsqueeze(1)) - lo)
    for i in torch.nonzero(fits).flatten().tolist():
        x, y = (origin[i] * 112).round().long().tolist()
        assert (crop[i] - full[i, :, y:y + 56, x:x + 56]).abs().mean() < 0.03
    # An item too large for the window gets a larger window, resampled to 56 px: the item is whole.
    big = ~fits
    zoom = (56 / (side * 112)).unsqueeze(1)
    assert ((wh_full * zoom - wh_crop)[big]).abs().max() <= 1.5 and (zoom[big] < 1).all()
