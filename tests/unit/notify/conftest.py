"""Fixtures for the notify tests: the shipped DK2020 workflow and its templates."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from dk2020flow.definition.model import Workflow
from dk2020flow.notify import Renderer

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "notifications" / "dk2020"


def load_workflow() -> Workflow:
    data = YAML(typ="safe").load((ROOT / "workflows" / "dk2020.yaml").read_text("utf-8"))
    return Workflow.model_validate(data)


def load_sources() -> dict[str, str]:
    return {path.name: path.read_text("utf-8") for path in TEMPLATES.glob("*.jinja")}


@pytest.fixture(scope="session")
def workflow() -> Workflow:
    return load_workflow()


@pytest.fixture(scope="session")
def sources() -> dict[str, str]:
    return load_sources()


@pytest.fixture(scope="session")
def renderer(sources: dict[str, str], workflow: Workflow) -> Renderer:
    return Renderer(sources, timezone=workflow.timezone)
