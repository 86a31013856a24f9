"""Workflow definitions: the file format, its loader and its validator.

The names below are loaded on first use (PEP 562), so a command that only
needs a small part of this package (a duration, a time rule) starts fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dk2020flow.definition.diagnostics import (
        DefinitionError as DefinitionError,
    )
    from dk2020flow.definition.diagnostics import (
        Diagnostic as Diagnostic,
    )
    from dk2020flow.definition.diagnostics import (
        Severity as Severity,
    )
    from dk2020flow.definition.loader import (
        LoadedWorkflow as LoadedWorkflow,
    )
    from dk2020flow.definition.loader import (
        TemplateSource as TemplateSource,
    )
    from dk2020flow.definition.loader import (
        load_workflow as load_workflow,
    )
    from dk2020flow.definition.loader import (
        load_workflow_text as load_workflow_text,
    )
    from dk2020flow.definition.model import (
        Workflow as Workflow,
    )

# Loaded on first use (PEP 562): importing one module of this package does not
# pull in all of them, so commands that need little start fast.
_WHERE = {
    "DefinitionError": "diagnostics",
    "Diagnostic": "diagnostics",
    "LoadedWorkflow": "loader",
    "Severity": "diagnostics",
    "TemplateSource": "loader",
    "Workflow": "model",
    "load_workflow": "loader",
    "load_workflow_text": "loader",
}

__all__ = [
    "DefinitionError",
    "Diagnostic",
    "LoadedWorkflow",
    "Severity",
    "TemplateSource",
    "Workflow",
    "load_workflow",
    "load_workflow_text",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
