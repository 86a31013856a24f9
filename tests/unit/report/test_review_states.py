"""Which states a checklist item holds a plan back in: read from the workflow, not named."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from dk2020flow.definition.model import Workflow
from dk2020flow.report.model import _under_review

WORKFLOWS = Path(__file__).resolve().parents[3] / "workflows"


def _workflow(name: str) -> Workflow:
    return Workflow.model_validate(YAML(typ="safe").load((WORKFLOWS / f"{name}.yaml").read_text()))


@pytest.mark.parametrize(
    ("workflow", "checklist", "states"),
    [
        # DK2020: the CAPF screening and the revision it sends a plan to (not the drafting
        # before the first screening, which also leads into it).
        ("dk2020", "capf", {"screening", "revising"}),
        # The EU Mission: its own names, two checklists.
        ("eu_mission", "ccc_review", {"peer_review", "revising"}),
        ("eu_mission", "progress_report", {"report_review", "report_revising"}),
    ],
)
def test_review_and_revision_states_come_from_the_transitions(
    workflow: str, checklist: str, states: set[str]
) -> None:
    assert _under_review(_workflow(workflow), checklist) == states
