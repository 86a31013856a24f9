"""The `documents:` keys and `needs_documents`: the model, the validator and the JSON Schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from definition_helpers import REPO, diagnostics_of

from dk2020flow.definition import load_workflow
from dk2020flow.definition.model import MAX_DOCUMENT_BYTES, parse_size
from dk2020flow.definition.schema_export import workflow_schema
from dk2020flow.definition.source import read_yaml

MINI = """\
workflow: mini
version: "1"
title: Mini
roles:
  clerk: {receives_mail: true}
  boss: {}
documents:
  plan: {title: Plan, types: [pdf, docx], max_size: 20MB}
states:
  open: {initial: true}
  done: {terminal: true}
transitions:
  - trigger: finish
    from: open
    to: done
    roles: [clerk, boss]
    needs_documents: plan
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workflows" / "mini.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _codes(tmp_path: Path, text: str) -> list[tuple[str, int, int]]:
    return sorted((d.code, d.line, d.column) for d in diagnostics_of(_write(tmp_path, text), {}))


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("20MB", 20_000_000),
        ("20 MB", 20_000_000),
        ("20mb", 20_000_000),
        ("20MiB", 20 * 1024 * 1024),
        ("500kB", 500_000),
        ("1.5MB", 1_500_000),
        ("2048", 2048),
        (5_000_000, 5_000_000),
        ("100MB", MAX_DOCUMENT_BYTES),
    ],
)
def test_sizes_read_as_bytes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["twenty", "0", 0, -5, "101MB", "1GB", "20 TB", "MB", True])
def test_sizes_refused(text: Any) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_a_valid_file_and_its_defaults(tmp_path: Path) -> None:
    workflow = load_workflow(_write(tmp_path, MINI), check_templates=False).workflow
    plan = workflow.documents["plan"]
    assert plan.types == ("pdf", "docx")
    assert plan.max_bytes == 20_000_000
    assert workflow.transitions[0].needs_documents == ("plan",)  # one name for a list of one
    # No roles of its own: the roles of the transitions that need it may upload it.
    assert workflow.upload_roles("plan") == ("clerk", "boss")
    assert workflow.upload_roles("nothing") == ()


def test_an_automatic_transition_needs_no_documents(tmp_path: Path) -> None:
    text = MINI.replace(
        "    roles: [clerk, boss]\n    needs_documents: plan\n",
        "    roles: [clerk, boss]\n    needs_documents: plan\n"
        "  - trigger: auto\n    from: open\n    to: done\n    automatic: true\n"
        "    when: [{field: x, present: true}]\n    needs_documents: [plan]\n",
    ).replace("\ndocuments:", "\nfields:\n  x: {type: text}\ndocuments:", 1)
    found = diagnostics_of(_write(tmp_path, text), {})
    assert [d.code for d in found] == ["DF013"]
    assert "hands in no documents" in found[0].message


def test_a_broken_document_is_one_diagnostic(tmp_path: Path) -> None:
    # A misspelt key in the document's entry: DF010 there, not also "unknown document" where
    # the transition names it.
    text = MINI.replace("max_size: 20MB}", "max_sise: 20MB}")
    found = diagnostics_of(_write(tmp_path, text), {})
    assert [d.code for d in found] == ["DF010"]
    assert "did you mean `max_size`" in found[0].hint


def test_unknown_role_of_a_document(tmp_path: Path) -> None:
    text = MINI.replace("max_size: 20MB}", "max_size: 20MB, roles: [clerk, clark]}")
    assert _codes(tmp_path, text) == [("DF022", 8, 74)]


def test_the_shipped_workflow_declares_and_needs_its_documents() -> None:
    workflow = load_workflow(REPO / "workflows" / "dk2020.yaml", check_templates=False).workflow
    assert {"application", "draft_plan", "council_decision"} <= set(workflow.documents)
    needs = {t.trigger: t.needs_documents for t in workflow.transitions if t.needs_documents}
    assert needs == {
        "submit_application": ("application",),
        "submit_plan": ("draft_plan",),
        "resubmit_plan": ("draft_plan",),
        "record_council_adoption": ("council_decision",),
    }
    for name, spec in workflow.documents.items():
        assert spec.types and spec.max_bytes > 0, name
        assert workflow.upload_roles(name), name


# ----------------------------------------------------------------------------- schema vs validator


def _mini_data() -> dict[str, Any]:
    data = read_yaml(MINI, "mini.yaml").data
    assert data is not None
    return data


def _variant(**document: Any) -> dict[str, Any]:
    data = copy.deepcopy(_mini_data())
    data["documents"]["plan"] = {"title": "Plan", **document}
    return data


VARIANTS = [
    ({"types": ["pdf"], "max_size": "20MB"}, True),
    ({"types": "pdf", "max_size": 1000}, True),
    ({"types": ["pdf", "jpeg", "png", "docx", "xlsx", "odt", "ods"], "max_size": "1.5 MiB"}, True),
    ({"types": ["dox"], "max_size": "20MB"}, False),
    ({"types": [], "max_size": "20MB"}, False),
    ({"types": ["pdf"], "max_size": "twenty"}, False),
    ({"types": ["pdf"], "max_size": 0}, False),
    ({"types": ["pdf"], "max_size": MAX_DOCUMENT_BYTES + 1}, False),
    ({"types": ["pdf"]}, False),
    ({"types": ["pdf"], "max_size": "20MB", "colour": "red"}, False),
]


@pytest.mark.parametrize(("document", "valid"), VARIANTS)
def test_the_json_schema_and_the_validator_agree(
    tmp_path: Path, document: dict[str, Any], valid: bool
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from ruamel.yaml import YAML

    data = _variant(**document)
    schema_ok = jsonschema.Draft202012Validator(workflow_schema()).is_valid(data)
    path = tmp_path / "workflows" / "mini.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as stream:
        YAML().dump(data, stream)
    errors = [d for d in diagnostics_of(path, {}) if d.is_error]
    assert schema_ok is valid
    assert (not errors) is valid, [str(d) for d in errors]


def test_the_schema_lists_the_document_types_for_editors() -> None:
    schema = workflow_schema()
    document = schema["$defs"]["DocumentDef"]["properties"]
    assert "pdf" in str(document["types"]) and "jpeg" in str(document["types"])
    assert "needs_documents" in schema["$defs"]["Transition"]["properties"]
    assert "documents" in schema["properties"]
