"""environment.yml and pyproject.toml pin the same stack."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req, maxsplit=1)[0].lower()


def test_environment_yml_pins_agree_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    pip = [line.strip()[2:].strip() for line in lines[start + 1:] if line.strip().startswith("- ")]
    pip = [p for p in pip if not p.startswith("-e")]
    assert {_name(p): p.replace(" ", "") for p in pip} == {_name(p): p.replace(" ", "") for p in wanted}
    assert any(re.fullmatch(r"\s*- python=3\.11\s*", line) for line in lines)
    assert "torch==2.14.1" in pip and "torchvision==0.29.1" in pip


def test_distribution_is_not_named_smt():
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"] != "smt"


def _make_lab(*args: str) -> str:
    import shutil
    import subprocess

    import pytest

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return subprocess.run(["make", "-n", "lab", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_make_lab_allows_root_prints_the_url_and_passes_lab_args():
    import os

    def lab_line(out: str) -> str:
        return next(line for line in out.splitlines() if "-m jupyter lab" in line)

    root = _make_lab("LAB_USER_ID=0", "LAB_ARGS=--no-browser --ServerApp.token=x", "LAB_PORT=9123")
    assert "--allow-root" in lab_line(root) and lab_line(root).endswith("--no-browser --ServerApp.token=x")
    assert "--port 9123" in lab_line(root) and "http://127.0.0.1:9123/lab" in root
    user = _make_lab("LAB_USER_ID=1000")
    assert "--allow-root" not in lab_line(user) and "http://127.0.0.1:8888/lab" in user
    assert ("--allow-root" in lab_line(_make_lab())) == (os.getuid() == 0)  # whoever runs this
