"""smt.images.open_rgb: one file per PIL mode, and the pixel values that reach the model through every loader."""
import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import PILToTensor

from smt.images import open_rgb
from smt.validate import image_folder
from viz.images import ImageFiles
from viz.sessions import load_image

# 16-bit values and their 8-bit equivalents (v * 255 / 65535 = v / 257, exact)
V16 = np.array([[0, 257 * 10, 257 * 128], [257 * 200, 65535, 257 * 64]], dtype=np.uint16)
E16 = np.array([[0, 10, 128], [200, 255, 64]], dtype=np.uint8)


def _grey(e: np.ndarray) -> np.ndarray:
    return np.repeat(e[..., None], 3, axis=2)


def _exif(orientation: int):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _files(d):
    """Every kind of file, with the RGB array the model must see (worked out from the values written)."""
    cases = {}
    Image.fromarray(V16).save(d / "grey16.png")  # PIL opens it as I;16
    cases["grey16.png"] = _grey(E16)
    Image.fromarray(V16).save(d / "grey16.tif")
    cases["grey16.tif"] = _grey(E16)
    # 32-bit integers within 0..65535: 16-bit data (scaled as 16-bit)
    Image.fromarray(V16.astype(np.int32)).save(d / "int32_16bit.tif")
    cases["int32_16bit.tif"] = _grey(E16)
    # 32-bit integers beyond 16 bits: their own range [min, max] -> 0..255
    big = np.array([[-1000, 0, 99000], [49000, 199000, 24000]], dtype=np.int32)
    Image.fromarray(big).save(d / "int32_range.tif")
    cases["int32_range.tif"] = _grey(np.round((big + 1000) / 200000 * 255).astype(np.uint8))
    # float in [0, 1]: x 255
    f01 = np.array([[0.0, 0.2, 1.0], [0.5, 0.04, 0.8]], dtype=np.float32)
    Image.fromarray(f01).save(d / "float01.tif")
    cases["float01.tif"] = _grey(np.round(f01.astype(np.float64) * 255).astype(np.uint8))
    # float outside [0, 1]: range
    fr = np.array([[-2.0, 0.0, 6.0], [2.0, 4.0, 1.0]], dtype=np.float32)
    Image.fromarray(fr).save(d / "float_range.tif")
    cases["float_range.tif"] = _grey(np.round((fr.astype(np.float64) + 2) / 8 * 255).astype(np.uint8))
    # palette
    idx = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    pal = [255, 0, 0, 0, 128, 0, 10, 20, 30] + [0] * (256 * 3 - 9)
    p = Image.frombytes("P", (3, 2), idx.tobytes())
    p.putpalette(pal)
    p.save(d / "palette.png")
    colours = np.array(pal[:9], dtype=np.uint8).reshape(3, 3)
    cases["palette.png"] = colours[idx]
    # palette with a transparent index: over white
    p.save(d / "palette_transparent.png", transparency=1)
    expected = colours[idx].copy()
    expected[idx == 1] = 255
    cases["palette_transparent.png"] = expected
    # LA: grey with alpha, over white: out = a * L + (1 - a) * 255
    grey = np.array([[100, 100, 0], [200, 50, 255]], dtype=np.uint8)
    alpha = np.array([[255, 0, 255], [128, 255, 0]], dtype=np.uint8)
    Image.fromarray(np.stack([grey, alpha], -1), "LA").save(d / "la.png")
    la = np.round(alpha / 255 * grey + (1 - alpha / 255) * 255)
    cases["la.png"] = _grey(la.astype(np.uint8))
    # RGBA
    rgb = np.array([[[10, 20, 30], [40, 50, 60], [70, 80, 90]], [[1, 2, 3], [200, 100, 0], [9, 9, 9]]], np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha[..., None]], -1), "RGBA").save(d / "rgba.png")
    cases["rgba.png"] = np.round(alpha[..., None] / 255 * rgb + (1 - alpha[..., None] / 255) * 255).astype(np.uint8)
    # CMYK (TIFF, lossless): R = (255 - C)(255 - K) / 255
    cmyk = np.array([[[100, 50, 0, 128], [0, 0, 0, 0], [255, 0, 0, 0]],
                     [[0, 255, 0, 0], [0, 0, 255, 0], [0, 0, 0, 255]]], dtype=np.uint8)
    Image.fromarray(cmyk, "CMYK").save(d / "cmyk.tif")
    k = 255 - cmyk[..., 3:].astype(np.float64)
    cases["cmyk.tif"] = np.round((255 - cmyk[..., :3]) * k / 255).astype(np.uint8)
    # 1-bit
    bits = np.array([[True, False, True], [False, False, True]])
    Image.fromarray(bits).save(d / "bits.png")
    cases["bits.png"] = _grey(bits.astype(np.uint8) * 255)
    # EXIF orientation 6: the stored pixels are shown rotated 90 degrees clockwise
    Image.fromarray(rgb).save(d / "exif6.png", exif=_exif(6))
    cases["exif6.png"] = np.rot90(rgb, k=-1)
    Image.fromarray(rgb).save(d / "exif3.tif", exif=_exif(3))
    cases["exif3.tif"] = np.rot90(rgb, k=2)
    Image.fromarray(rgb).save(d / "plain.png")
    cases["plain.png"] = rgb
    return cases


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("modes")
    return d, _files(d)


def test_the_files_have_the_modes_they_test(files):
    d, _ = files
    modes = {f: Image.open(d / f).mode for f in ("grey16.png", "int32_range.tif", "float01.tif", "palette.png",
                                                  "la.png", "cmyk.tif", "bits.png")}
    assert modes == {"grey16.png": "I;16", "int32_range.tif": "I", "float01.tif": "F", "palette.png": "P",
                     "la.png": "LA", "cmyk.tif": "CMYK", "bits.png": "1"}


def test_open_rgb_gives_the_pixels_a_person_sees(files):
    d, cases = files
    for name, expected in cases.items():
        im = open_rgb(d / name)
        assert im.mode == "RGB", name
        got = np.asarray(im)
        assert got.shape == expected.shape, name
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1, (name, got[..., 0], expected[..., 0])
        assert np.array_equal(np.asarray(open_rgb((d / name).read_bytes())), got), name  # bytes read alike


def test_the_pixels_reaching_the_model_through_each_loader(files, tmp_path):
    """viz run's ImageFiles, smt validate's dataset and the playground's load_image hand over the same pixels."""
    d, cases = files
    names = sorted(cases)
    ds = ImageFiles([d / n for n in names], PILToTensor())
    for i, n in enumerate(names):
        x, path, err = ds[i]
        assert err is None and torch.equal(x, torch.from_numpy(np.array(open_rgb(d / n))).permute(2, 0, 1)), n
    val = tmp_path / "val" / "c0"
    val.mkdir(parents=True)
    for n in names:
        (val / n).write_bytes((d / n).read_bytes())
    vds = image_folder(tmp_path / "val", PILToTensor())
    assert sorted(p.split("/")[-1] for p, _ in vds.folder.samples) == names
    for i in range(len(vds)):
        x, target, path = vds[i]
        name = path.split("/")[-1]
        assert target == 0 and torch.equal(x.permute(1, 2, 0), torch.from_numpy(np.array(open_rgb(d / name))))
    # the playground resizes and crops: a constant 16-bit image stays constant at v / 257
    Image.fromarray(np.full((20, 30), 257 * 100, np.uint16)).save(tmp_path / "flat16.png")
    assert (load_image(tmp_path / "flat16.png", size=8) == 100).all()


def test_a_16_bit_photograph_is_not_white():
    """The case that was wrong: 16-bit noise through convert('RGB') was 98% white."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 65536, (32, 32), dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")
    got = np.asarray(open_rgb(buf.getvalue()))[..., 0]
    assert (got == 255).mean() < 0.01
    assert np.abs(got.astype(float) - noise / 257.0).max() <= 0.5 + 1e-9


def test_unreadable_is_an_error(tmp_path):
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(OSError):
        open_rgb(tmp_path / "x.png")
