"""The JSON Schema of the workflow file format, generated from the pydantic model.

Editors (VS Code with the YAML extension, JetBrains) use it to validate and
complete workflow files; ``workflows/*.yaml`` point at the shipped copy in
``src/dk2020flow/schema/workflow.schema.json``, which a test keeps equal to
what ``workflow_schema()`` generates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from dk2020flow.definition.model import Workflow

SCHEMA_ID = "https://dk2020flow.example/schema/workflow.schema.json"
SHIPPED = Path(__file__).resolve().parent.parent / "schema" / "workflow.schema.json"

_LOCAL_DATE = r"^\d{4}-\d{2}-\d{2}$"
_LOCAL_DATETIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$"


class _LocalTimes(GenerateJsonSchema):
    """Dates and times in workflow files are local (no offset), and YAML may leave seconds out.

    JSON Schema's ``date-time`` format demands both, so plain patterns are used instead.
    """

    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": _LOCAL_DATETIME,
            "description": "Local date and time in the workflow's timezone, e.g. 2020-08-31T23:59",
        }

    def date_schema(self, schema: core_schema.DateSchema) -> JsonSchemaValue:
        return {"type": "string", "pattern": _LOCAL_DATE, "description": "A date, e.g. 2020-08-31"}


ONE_OR_MANY = {
    "MailSpec": ("to", "cc"),
    "Transition": ("from", "roles", "requires", "accepts", "needs_documents", "mail"),
    "OnEntry": ("mail",),
    "OnDue": ("mail",),
    "Escalate": ("to",),
    "CalendarEvent": ("reminders",),
    "Reminders": ("before",),
    "DocumentDef": ("types", "roles"),
}
"""Lists the loader also accepts as a single value (``to: mayor`` for ``to: [mayor]``)."""


def _allow_single_values(definitions: dict[str, Any]) -> None:
    for model, names in ONE_OR_MANY.items():
        properties = definitions[model]["properties"]
        for name in names:
            prop = properties[name]
            array = {k: v for k, v in prop.items() if k in {"type", "items", "minItems"}}
            rest = {k: v for k, v in prop.items() if k not in array}
            properties[name] = {**rest, "anyOf": [prop["items"], array]}


def workflow_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a workflow file."""
    generated = Workflow.model_json_schema(by_alias=True, schema_generator=_LocalTimes)
    _allow_single_values(generated["$defs"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **generated,
        "title": "dk2020flow workflow file",
        "description": "A workflow for dk2020flow; see docs/workflow-format.md.",
    }


def schema_text() -> str:
    """The schema as the shipped file holds it (sorted keys are not used: field order reads better)."""
    return json.dumps(workflow_schema(), indent=2, ensure_ascii=False) + "\n"
