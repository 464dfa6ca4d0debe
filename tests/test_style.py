"""viz.style: venue presets from tueplots, applied only inside the context, TrueType fonts, editable SVG text."""
import io
import re

import matplotlib
import pytest
from matplotlib.figure import Figure

from viz import style


def _text_figure():
    fig = Figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("frequency ($\\pi$ rad / token)")
    ax.set_title("a title")
    return fig


@pytest.mark.parametrize("venue,bundle,kwargs", [
    ("cvpr2024", "cvpr2024", {"column": "half", "usetex": False}),
    ("iccv2023", "cvpr2024", {"column": "half", "usetex": False}),
    ("icml2024", "icml2024", {"column": "half", "usetex": False}),
])
def test_two_column_venues_take_tueplots_widths_and_sizes(venue, bundle, kwargs):
    from tueplots import bundles

    ref = getattr(bundles, bundle)(**kwargs)
    full = getattr(bundles, bundle)(**{**kwargs, "column": "full"})
    with style.paper(venue, "column") as st:
        assert matplotlib.rcParams["figure.figsize"][0] == pytest.approx(ref["figure.figsize"][0])
        assert matplotlib.rcParams["font.size"] == ref["font.size"]
        assert st.width == pytest.approx(ref["figure.figsize"][0])
    with style.paper(venue, "full") as st:
        assert st.width == pytest.approx(full["figure.figsize"][0]) == pytest.approx(st.text_width)


def test_one_column_venue_column_is_half_the_text_width():
    from tueplots import bundles

    text = bundles.neurips2024(usetex=False)["figure.figsize"][0]
    with style.paper("neurips2024", "column") as st:
        assert st.width == pytest.approx(text / 2) and st.text_width == pytest.approx(text)


def test_context_restores_rcparams_also_after_an_error():
    before = dict(matplotlib.rcParams)
    with pytest.raises(RuntimeError):
        with style.paper("cvpr2024"):
            assert matplotlib.rcParams["pdf.fonttype"] == 42
            raise RuntimeError("inside")
    assert dict(matplotlib.rcParams) == before
    with style.screen():
        assert matplotlib.rcParams["font.family"] == ["sans-serif"]
    assert dict(matplotlib.rcParams) == before


def test_pdf_embeds_truetype_never_type3_and_svg_keeps_text():
    with style.paper("cvpr2024"):
        fig = _text_figure()
        pdf, svg = io.BytesIO(), io.BytesIO()
        fig.savefig(pdf, format="pdf")
        fig.savefig(svg, format="svg")
    data = pdf.getvalue()
    assert b"/Type3" not in data and re.search(rb"/Subtype\s*/(TrueType|CIDFontType2)", data)
    text = svg.getvalue().decode()
    assert "<text" in text and "a title" in text


def test_saved_files_carry_no_date(tmp_path):
    from viz.figures.writing import _save_figure

    outs = []
    for i in range(2):
        with style.paper("cvpr2024"):
            p = tmp_path / f"f{i}.pdf"
            _save_figure(_text_figure(), p, "pdf")
            outs.append(p.read_bytes())
    assert outs[0] == outs[1] and b"CreationDate" not in outs[0]


def test_bad_arguments_say_what_to_use():
    with pytest.raises(ValueError, match="cvpr2024"):
        style.venue_style("cvpr2099")
    with pytest.raises(ValueError, match="'column' or 'full'"):
        style.venue_style("cvpr2024", "half")


def test_norms_are_shared_and_centred():
    n = style.signed_norm([-1.0, 3.0])
    assert (n.vmin, n.vmax) == (-3.0, 3.0)
    m = style.magnitude_norm([0.5, 2.0])
    assert (m.vmin, m.vmax) == (0.0, 2.0)
