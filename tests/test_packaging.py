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
