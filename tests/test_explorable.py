"""The offline explorable (`python -m viz explorable`): a small build (two random-weight test_smt checkpoints as a
user's ablation folder, two canvases), its files, two builds byte for byte, the error for a model the playground
can not show, and the page in headless Chromium opened from file:// with every other request aborted.
"""
import json
import re
from pathlib import Path

import pytest
import timm
import torch

from browser_harness import ARTIFACTS, chromium, file_only, missing
from viz.explorable import build, model_set


def _checkpoints(folder: Path) -> Path:
    """Two test_smt models as a user's ablation folder: 4 and 2 SAM heads (different mask choices)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, heads, seed in (("a_heads4.pth", None, 0), ("b_heads2.pth", 2, 1)):
        torch.manual_seed(seed)
        extra = {} if heads is None else {"sam_heads": heads}
        model = timm.create_model("test_smt", num_classes=10, **extra)
        torch.save(model.state_dict(), folder / name)
    return folder


def _figures(folder: Path) -> Path:
    """A figure folder as `python -m viz figures` writes it (one figure) with a claims table."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 20), (200, 30, 30)).save(folder / "spectrum.png")
    (folder / "spectrum.pdf").write_bytes(b"%PDF-1.4 stand-in\n")
    (folder / "spectrum.npz").write_bytes(b"stand-in")
    (folder / "spectrum.json").write_text(json.dumps({"figure": "spectrum", "caption": "Relative log amplitude."}))
    (folder / "claims.md").write_text("| claim | verdict |\n|---|---|\n| SAA lowers high frequencies | supported |\n")
    return folder


def _build(out: Path, models: Path, figures: Path, workers: int = 1) -> dict:
    return build(out, model=str(models), num_images=2, figures=figures, workers=workers, progress=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("explorable")
    models, figures = _checkpoints(root / "models"), _figures(root / "figs")
    out = root / "parent" / "site"
    report = _build(out, models, figures)
    return {"root": root, "out": out, "models": models, "figures": figures, "report": report}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def _manifest(out: Path) -> dict:
    text = (out / "data" / "manifest.js").read_text()
    return json.loads(re.fullmatch(r"explorableManifest\((.*)\);\n", text, re.S).group(1))


def _chunk(out: Path, key: str) -> dict:
    text = (out / "data" / f"{key}.js").read_text()
    return json.loads(re.fullmatch(r"explorableChunk\((.*)\);\n", text, re.S).group(1))


def test_every_state_is_built_and_nothing_is_written_outside_out(site):
    out, models = site["out"], site["models"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["site"]  # no working folder left, nothing beside
    manifest = _manifest(out)
    # the states: per model, 2 images x (no mask + one per head) per SAM block, counted from the models themselves
    from viz.analysis import sam_block_names
    from viz.explorable import _load

    expected = 0
    for variant, info in zip(model_set(str(models)).variants, manifest["models"]):
        model = _load(variant.spec).model
        names = sam_block_names(model)
        assert [b["name"] for b in info["blocks"]] == names
        expected += sum(2 * (1 + len(model.get_submodule(b).attn.mhmc.convs)) for b in names)
    assert manifest["states"] == expected == site["report"]["states"]
    assert [m["heads"] for m in (manifest["models"][0]["blocks"][0], manifest["models"][1]["blocks"][0])] == [4, 2]
    seen = 0
    for mi, info in enumerate(manifest["models"]):
        for bi, blk in enumerate(info["blocks"]):
            states = _chunk(out, f"m{mi}-b{bi}")
            assert sorted(states["states"]) == sorted(f"i{i}-{m}" for i in range(2)
                                                      for m in ["none"] + [f"h{h}" for h in range(1, blk["heads"] + 1)])
            for st in states["states"].values():
                seen += 1
                for view, rel in st["src"].items():
                    head = (out / "data" / rel).read_bytes()[:12]
                    assert head[:8] == b"\x89PNG\r\n\x1a\n" or (head[:4], head[8:]) == (b"RIFF", b"WEBP"), (view, rel)
                assert len(st["top5"]) == 5 and st["explanation"] and st["readout"]
                if "Masking" in st["explanation"]:  # the line quotes the top-1 the table shows
                    assert st["explanation"].endswith(f"→ {st['top5'][0][0]} {st['top5'][0][1]}"), st
    assert seen == expected
    # a mask changes the pictures it should: the heads view of a masked state differs from the unmasked one
    st = _chunk(out, "m0-b0")["states"]
    assert (out / "data" / st["i0-h1"]["src"]["heads"]).read_bytes() != (
        out / "data" / st["i0-none"]["src"]["heads"]).read_bytes()
    assert st["i0-h1"]["src"]["fields"] == st["i0-none"]["src"]["fields"]  # fields do not depend on masks
    assert "Masking head 1 of" in st["i0-h1"]["explanation"]


def test_figures_page_lists_the_figure_set_and_claims(site):
    page = (site["out"] / "figures.html").read_text()
    assert "figures/spectrum.png" in page and "Relative log amplitude." in page
    assert "figures/spectrum.pdf" in page and "figures/spectrum.npz" in page
    assert "SAA lowers high frequencies" in page
    for name in ("spectrum.png", "spectrum.pdf", "spectrum.npz", "spectrum.json", "claims.md"):
        assert (site["out"] / "figures" / name).read_bytes() == (site["figures"] / name).read_bytes()


def test_two_builds_are_byte_identical(site, tmp_path, capsys):
    import shutil

    from viz.__main__ import main

    other = tmp_path / "elsewhere"  # another folder, holding a previous build and a file of someone else's
    shutil.copytree(site["out"], other)
    (other / "figures.html").write_text("an older build")
    (other / "keep.txt").write_text("not ours")
    args = ["explorable", "--out", str(other), "--model", str(site["models"]), "--num-images", "2", "--figures",
            str(site["figures"]), "--workers", "2", "--no-progress"]  # and in two processes
    before = _files(other)
    assert main(args) == 2  # a previous build is replaced only with --overwrite, like viz figures
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out:") and "--overwrite" in err[0], err
    assert _files(other) == before  # refused before any work: nothing changed
    assert main(args + ["--overwrite"]) == 0
    first, second = _files(site["out"]), _files(other)
    assert second.pop("keep.txt") == b"not ours"  # a rebuild replaces its own names only
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []


def test_a_model_the_playground_can_not_show(tmp_path, capsys):
    from viz.__main__ import main

    with pytest.raises(ValueError, match=r"'resnet18 .*' is not an SMT model \(ResNet\).*--model main"):
        model_set("resnet18")
    out = tmp_path / "site"
    assert main(["explorable", "--out", str(out), "--model", "resnet18", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is not an SMT model" in err and "SMT checkpoint file" in err
    assert not out.exists()  # checked before anything is written
    with pytest.raises(ValueError, match="neither a demo model"):
        model_set("no_such_model")


def test_bad_options_are_one_line_each_before_any_work(tmp_path, capsys):
    from viz.__main__ import main

    out = tmp_path / "site"
    code = main(["explorable", "--out", str(out), "--model", "test_smt", "--num-images", "0", "--workers", "0",
                 "--device", "cuda", "--images", str(tmp_path / "no_images"), "--figures", str(tmp_path / "no_figs"),
                 "--seed", "-1", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    options = ["--num-images", "--workers", "--seed", "--device", "--images", "--figures"]
    assert [line.split(":")[1].strip() for line in err] == options, err  # one line per problem, naming the option
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    assert main(["explorable", "--out", str(tmp_path / "file"), "--model", "test_smt", "--no-progress"]) == 2
    assert "error: --out:" in capsys.readouterr().err


@pytest.mark.browser
@pytest.mark.skipif(missing() is not None, reason=missing() or "")
def test_page_from_file_url_without_network(site):
    out = site["out"]
    manifest = _manifest(out)
    with chromium(width=1280, height=1300, allow=file_only) as b:
        page = b.page
        page.goto((out / "index.html").as_uri())
        page.wait_for_selector("body[data-state='m0-b0/i0-none']", timeout=30_000)

        def shown() -> dict:
            return page.evaluate("""() => ({state: document.body.dataset.state,
                explanation: document.getElementById('explanation').textContent,
                src: Object.fromEntries(['overlay', 'heads', 'fields', 'saa'].map(v =>
                    [v, document.getElementById(v).getAttribute('src')])),
                loaded: ['overlay', 'heads', 'fields', 'saa'].every(v => document.getElementById(v).naturalWidth > 0),
                alt: ['overlay', 'heads', 'fields', 'saa'].map(v => document.getElementById(v).alt)})""")

        def act(action, state: str, says: str, changed: tuple[str, ...]) -> None:
            before = shown()
            action()
            page.wait_for_selector(f"body[data-state='{state}']", timeout=30_000)
            after = shown()
            assert after["loaded"] and all(after["alt"]), after
            assert says in after["explanation"], (says, after["explanation"])
            for view in changed:  # another file, and another picture
                assert after["src"][view] != before["src"][view], view
                assert (out / after["src"][view]).read_bytes() != (out / before["src"][view]).read_bytes(), view

        blocks = manifest["models"][0]["blocks"]
        page.focus("#image")
        page.keyboard.press("ArrowRight")  # image 0 -> 1
        page.wait_for_selector("body[data-state='m0-b0/i1-none']", timeout=30_000)
        act(lambda: page.keyboard.press("ArrowLeft"), "m0-b0/i0-none", manifest["images"][0]["name"],
            ("overlay", "heads", "fields", "saa"))
        act(lambda: page.keyboard.press("ArrowRight"), "m0-b0/i1-none", manifest["images"][1]["name"],
            ("overlay", "heads", "fields", "saa"))
        page.focus("#block")
        act(lambda: page.keyboard.press("ArrowDown"), "m0-b1/i1-none", blocks[1]["name"],
            ("overlay", "heads", "fields", "saa"))
        act(lambda: page.get_by_label("head 2", exact=False).first.click(), "m0-b1/i1-h2",
            f"Masking head 2 of {blocks[1]['name']}", ("overlay", "heads", "saa"))
        page.focus("#mask input[value='h2']")
        act(lambda: page.keyboard.press("ArrowRight"), "m0-b1/i1-h3", "Masking head 3", ("heads", "saa"))
        second = manifest["models"][1]["label"]
        act(lambda: page.get_by_label(second).check(), "m1-b1/i1-none", second, ("overlay", "heads", "fields", "saa"))
        assert page.locator("#mask input").count() == 1 + manifest["models"][1]["blocks"][1]["heads"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "explorable.png"), full_page=True)

        page.goto((out / "figures.html").as_uri())
        assert page.evaluate("document.querySelector('figure img').naturalWidth") == 40
        assert page.locator("#claims table").count() == 1
        assert b.blocked == [], f"{len(b.blocked)} requests that were not file: were attempted: {b.blocked[:3]}"
        assert b.console_errors == []
