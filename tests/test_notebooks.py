"""The notebooks as committed: no outputs, a parameters cell with a fast mode first, one straight path, thin.

They are executed top to bottom by the test command (`pytest --nbmake notebooks`, fast mode).
"""
import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
EXPECTED = ["00_tour", "01_sam_playground", "02_feature_maps", "03_frequency", "04_distance", "05_erf",
            "06_gradcam", "07_ablations", "08_paper_figures", "09_claims"]


def test_the_suite_is_complete():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs_and_thin(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name} is committed with outputs or execution counts: clear them"
    assert cells[0]["cell_type"] == "markdown", "the first cell states the question or claim"
    assert cells[-1]["cell_type"] == "markdown", "the last cell says what the numbers show"
    assert "parameters" in code[0]["metadata"].get("tags", []), "the first code cell is tagged `parameters`"
    params = "".join(code[0]["source"])
    assert "FAST" in params and "os.environ" in params, "the parameters cell reads a fast mode from the environment"
    for c in code:
        tree = ast.parse("".join(c["source"]))
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not defs, f"{path.name} defines {defs[0].name}: move it into viz/"
        assert len("".join(c["source"]).splitlines()) <= 15, f"{path.name} has a long cell: keep cells short"
