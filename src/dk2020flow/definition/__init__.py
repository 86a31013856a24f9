"""Workflow definitions: the file format, its loader and its validator."""

from dk2020flow.definition.diagnostics import DefinitionError, Diagnostic, Severity
from dk2020flow.definition.loader import (
    LoadedWorkflow,
    TemplateSource,
    load_workflow,
    load_workflow_text,
)
from dk2020flow.definition.model import Workflow

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
