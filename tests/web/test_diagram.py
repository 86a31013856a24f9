"""The workflow diagram: well-formed, accessible SVG that escapes every text and marks
the current state in words, not colour alone."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from dk2020flow.bundled import workflow_path
from dk2020flow.definition.loader import load_workflow
from dk2020flow.definition.model import Workflow
from dk2020flow.web.diagram import CURRENT_FILL, workflow_outline, workflow_svg

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script> & co'


@pytest.fixture(scope="module")
def dk2020() -> Workflow:
    return load_workflow(workflow_path("dk2020")).workflow


@pytest.fixture(scope="module")
def evil(dk2020: Workflow) -> Workflow:
    """DK2020 with HTML in a state's title."""
    invited = dk2020.states["invited"].model_copy(update={"title": {"da": EVIL, "en": EVIL}})
    return dk2020.model_copy(update={"states": {**dk2020.states, "invited": invited}})


def _texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]


def test_every_state_is_drawn_and_the_svg_is_accessible(dk2020: Workflow) -> None:
    markup = workflow_svg(dk2020, "screening", "DK2020: sagen er i CAPF-screening")
    root = ET.fromstring(str(markup))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title_id, desc_id = (root.get("aria-labelledby") or "").split()
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert (title.get("id"), desc.get("id")) == (title_id, desc_id)
    assert title.text == "DK2020: sagen er i CAPF-screening"
    assert "Sagen er i tilstanden CAPF-screening." in (desc.text or "")
    texts = _texts(root)
    for state in ("Inviteret", "Deltagelse besluttet", "CAPF-screening", "Udtrådt"):
        assert state in texts
    assert len(root.findall(f"{SVG}g")) == len(dk2020.states)
    assert "style=" not in str(markup)  # the CSP allows no inline styles


def test_the_current_state_is_filled_and_says_so(dk2020: Workflow) -> None:
    root = ET.fromstring(str(workflow_svg(dk2020, "decided", "x", language="en")))
    (current,) = [
        g for g in root.iter(f"{SVG}g") if "app-diagram-current" in (g.get("class") or "")
    ]
    rect = current.find(f"{SVG}rect")
    assert rect is not None and rect.get("fill") == CURRENT_FILL
    assert _texts(current) == ["Participation decided", "current state"]
    others = [g for g in root.iter(f"{SVG}g") if g is not current]
    assert all("current state" not in _texts(g) for g in others)
    nothing = ET.fromstring(str(workflow_svg(dk2020, None, "x")))
    assert not [g for g in nothing.iter(f"{SVG}g") if "current" in (g.get("class") or "")]


def test_every_text_is_escaped(evil: Workflow) -> None:
    markup = str(workflow_svg(evil, "invited", EVIL))
    assert "<script" not in markup
    assert "&lt;script&gt;" in markup
    root = ET.fromstring(markup)  # still well-formed XML
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == EVIL
    assert any(t.startswith('<script>alert("x")') for t in _texts(root))
    outline = str(workflow_outline(evil, "invited"))
    assert "<script" not in outline and "&lt;script&gt;" in outline


def test_the_outline_says_the_same_in_words(dk2020: Workflow) -> None:
    outline = str(workflow_outline(dk2020, "decided"))
    root = ET.fromstring(outline)
    items = root.findall("li")
    assert len(items) == len(dk2020.states)
    (current,) = [li for li in items if li.get("aria-current") == "step"]
    assert "".join(current.itertext()).startswith("Deltagelse besluttet (nuværende tilstand)")
    moves = ["".join(li.itertext()) for li in current.iter("li") if li is not current]
    assert moves == ["Indsend ansøgning → Ansøgning indsendt", "Udtræd af DK2020 → Udtrådt"]


def test_the_layers_follow_the_main_course(dk2020: Workflow) -> None:
    root = ET.fromstring(str(workflow_svg(dk2020, None, "x")))
    top: dict[str, float] = {}
    for group in root.iter(f"{SVG}g"):
        rect = group.find(f"{SVG}rect")
        assert rect is not None
        top[_texts(group)[0]] = float(rect.get("y") or 0)
    course = [
        "Inviteret",
        "Deltagelse besluttet",
        "Ansøgning indsendt",
        "Afventer opstart",
        "Onboarding",
        "Vejledning og workshops",
        "Planudkast",
        "CAPF-screening",
        "Godkendelse og vedtagelse",
        "Godkendt plan",
    ]
    assert [top[s] for s in course] == sorted(top[s] for s in course)
    assert len({top[s] for s in course}) == len(course)
