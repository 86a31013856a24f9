"""The shipped workflows, the shipped JSON Schema and the diagrams."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from definition_helpers import REPO

from dk2020flow.definition import load_workflow
from dk2020flow.definition.graph import mermaid_id, to_dot, to_mermaid
from dk2020flow.definition.schema_export import SHIPPED, schema_text, workflow_schema
from dk2020flow.definition.source import read_yaml

WORKFLOWS = sorted((REPO / "workflows").glob("*.yaml"))


def test_both_workflows_are_shipped() -> None:
    assert {p.stem for p in WORKFLOWS} >= {"dk2020", "status_reports"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_shipped_workflow_is_valid_with_its_templates(path: Path) -> None:
    loaded = load_workflow(path)
    assert [str(d) for d in loaded.warnings] == []
    assert loaded.template_dir == REPO / "notifications" / loaded.workflow.workflow
    for language in loaded.workflow.languages:
        assert any(name.endswith(f".{language}.jinja") for name in loaded.templates)


def test_shipped_schema_is_the_generated_one() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == schema_text(), (
        "regenerate it: dk2020flow workflow schema > src/dk2020flow/schema/workflow.schema.json"
    )
    schema = workflow_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["$id"] and schema["title"]


def _as_json(value: Any) -> Any:
    """YAML data the way an editor's schema validator sees it (dates are strings there)."""
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_shipped_workflows_pass_the_json_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = read_yaml(path.read_text(encoding="utf-8"), str(path)).data
    jsonschema.validate(_as_json(data), workflow_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**_as_json(data), "colour": "red"}, workflow_schema())


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_diagrams_show_every_state_and_transition(path: Path) -> None:
    workflow = load_workflow(path, check_templates=False).workflow
    mermaid, dot = to_mermaid(workflow), to_dot(workflow)
    assert mermaid.startswith("stateDiagram-v2\n")
    assert f"[*] --> {workflow.initial_state}\n" in mermaid
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    for name, state in workflow.states.items():
        assert f"    {mermaid_id(name)} : " in mermaid
        assert f'    "{name}" [label=' in dot
        if state.terminal:
            assert f"    {name} --> [*]\n" in mermaid
    for transition in workflow.transitions:
        assert transition.trigger in mermaid and transition.trigger in dot


def test_diagram_marks_automatic_and_timed_edges() -> None:
    workflow = load_workflow(REPO / "workflows" / "dk2020.yaml", check_templates=False).workflow
    mermaid = to_mermaid(workflow)
    assert "approval --> approved : approve [auto]" in mermaid
    assert "awaiting_start --> onboarding : start_round (secretariat) ⏰ round_start" in mermaid
    assert "⏰ reply_deadline: at 2020-08-31T23:59" in mermaid
    assert '"approval" -> "approved" [label="approve [auto]", style=dashed]' in to_dot(workflow)


def test_schema_is_valid_json_with_every_top_level_key() -> None:
    schema = json.loads(schema_text())
    assert set(schema["properties"]) >= {"workflow", "version", "states", "transitions", "cohorts"}
