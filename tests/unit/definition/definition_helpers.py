"""Shared helpers for the definition tests."""

from __future__ import annotations

from pathlib import Path

from dk2020flow.definition import DefinitionError, Diagnostic, load_workflow

CASES = Path(__file__).parent / "cases"
REPO = Path(__file__).resolve().parents[3]

HELLO = """{% block subject %}Hello {{ organisation.name }}{% endblock %}
{% block text %}Dear {{ recipient.name }}, see {{ links.programme }}.{% endblock %}
{% block html %}<p>Dear {{ recipient.name }}</p>{% endblock %}
"""
TEMPLATES = {"hello.da.jinja": HELLO, "hello.en.jinja": HELLO}


def diagnostics_of(path: Path, templates: object = None) -> tuple[Diagnostic, ...]:
    """Every diagnostic (errors and warnings) loading ``path`` gives."""
    try:
        loaded = load_workflow(path, templates=TEMPLATES if templates is None else templates)  # type: ignore[arg-type]
    except DefinitionError as exc:
        return exc.diagnostics
    return loaded.warnings
