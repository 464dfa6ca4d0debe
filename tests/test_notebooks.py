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


@pytest.fixture(scope="module")
def release_smt_tiny(tmp_path_factory):
    """smt_tiny in the authors' release layout (pickled yacs config, optimizer state), reference-filled weights."""
    from checkpoint_files import official_file

    path = tmp_path_factory.mktemp("release") / "smt_tiny.pth"
    official_file(path, "smt_tiny")
    return path


def _execute(name: str, tmp_path, parameters: dict) -> str:
    """Run a notebook with papermill's parameters (injected after the `parameters` cell); its printed text."""
    papermill = pytest.importorskip("papermill")
    path = next(p for p in NOTEBOOKS if p.stem == name)
    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(str(path), str(out), parameters=parameters, cwd=str(path.parent), kernel_name="python3",
                               progress_bar=False)
    nb = json.loads(out.read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    return "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")


def test_gradcam_notebook_on_a_release_checkpoint(release_smt_tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("SMT_NOTEBOOK_FAST", "1")
    text = _execute("06_gradcam", tmp_path, {"CHECKPOINT": str(release_smt_tiny), "DEVICE": "cpu"})
    assert "smt_tiny.pth" in text  # the caption names the checkpoint, not the demo model
    assert "pointing game: {}" in text  # the photographs have no boxes


def test_playground_notebook_on_a_release_checkpoint(release_smt_tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("SMT_NOTEBOOK_FAST", "1")
    text = _execute("01_sam_playground", tmp_path, {"CHECKPOINT": str(release_smt_tiny), "IMAGES": "photos",
                                                "DEVICE": "cpu"})
    assert "smt_tiny.pth" in text
