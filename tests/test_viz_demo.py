"""`python -m viz demo` (the job `make demo` runs) on the shipped demo model and images."""
import re

from viz.__main__ import main


def test_demo_reports_accuracy_localisation_and_modulation(capsys):
    assert main(["demo", "--no-summary", "--num-images", "24", "--no-figures"]) == 0
    out = capsys.readouterr().out
    ci = r"([\d.]+)% \[([\d.]+), ([\d.]+)\], N=(\d+)"  # every average with its 95% interval and N
    m = re.search(r"top-1 on the 24 shipped test canvases: " + ci, out)
    top1, lo, hi, n = float(m.group(1)), float(m.group(2)), float(m.group(3)), int(m.group(4))
    assert 0 <= lo <= top1 <= hi <= 100 and n == 24
    classes = re.findall(r"^  (?!stage )\S.* +" + ci + "$", out, flags=re.M)  # per-class lines
    assert len(classes) >= 5 and sum(int(c[3]) for c in classes) == 24
    assert re.search(r"pointing game vs item boxes \(a uniformly random point: " + ci + r"\):", out)
    stages = re.findall(r"stage \d output \(\d+x\d+\) " + ci, out)
    assert len(stages) == 3 and all(float(a) <= float(v) <= float(b) and k == "24" for v, a, b, k in stages)
    assert re.search(r"t=0\.5: [\d.]+ \[[\d.]+, [\d.]+\], N=\d+", out)  # ERF area ratio with its interval
    assert "kernels [3, 5, 7, 9] -> non-zero positions [9, 25, 49, 81]" in out
    signed = r"(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\], N=24"
    lf = re.findall(r"stages\.\d\.blocks\.\d+ +0\.\d{3} -> 0\.\d{3}  change " + signed, out)
    assert len(lf) == 6 and all(float(a) <= float(v) <= float(b) for v, a, b in lf)  # smt_nano's SAM blocks


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
