"""`python -m viz demo` (the job `make demo` runs) on the shipped demo model and images."""
import re

from viz.__main__ import main


def test_demo_reports_accuracy_localisation_and_modulation(capsys):
    assert main(["demo", "--no-summary", "--num-images", "24", "--no-figures"]) == 0
    out = capsys.readouterr().out
    top1 = float(re.search(r"top-1 on the 24 shipped test canvases:\s+([\d.]+)%", out).group(1))
    assert 0 <= top1 <= 100
    assert len(re.findall(r"^  \S.* +[\d.]+%  \(\d+ images\)$", out, flags=re.M)) >= 5  # per-class lines
    assert re.search(r"pointing game vs item boxes \(a uniformly random point:\s+[\d.]+%\), 24 canvases", out)
    assert len(re.findall(r"stage \d output \(\d+x\d+\)\s+[\d.]+%", out)) == 3
    assert "kernels [3, 5, 7, 9] -> non-zero positions [9, 25, 49, 81]" in out
    assert len(re.findall(r"stages\.\d\.blocks\.\d+ +0\.\d{3} -> 0\.\d{3}", out)) == 6  # smt_nano's SAM blocks


def test_demo_on_a_users_checkpoint(tmp_path, capsys, monkeypatch):
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "mine.safetensors"
    save_file(timm.create_model("test_smt", num_classes=7).state_dict(), str(path))
    monkeypatch.setenv("SMT_CHECKPOINT", str(path))
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"kind {i}\n" for i in range(7)))
    assert main(["demo", "--no-summary", "--num-images", "4", "--no-figures", "--device", "cpu", "--labels",
                 str(labels)]) == 0
    out = capsys.readouterr().out
    assert "mine.safetensors" in out and "top-1" not in out and "on cpu ==" in out
    assert "ERF of the last stage (4 images" in out
