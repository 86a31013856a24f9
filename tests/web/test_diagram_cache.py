"""A stored version's diagram (a ``CompiledWorkflow``) is drawn once per (content, state,
title, language) and handed out again: the same drawing a fresh one would be."""

from __future__ import annotations

import pytest

from dk2020flow.bundled import workflow_path
from dk2020flow.definition.loader import load_workflow
from dk2020flow.definition.model import Workflow
from dk2020flow.engine.machine import CompiledWorkflow, compiled
from dk2020flow.web.diagram import workflow_outline, workflow_svg


@pytest.fixture(scope="module")
def dk2020() -> Workflow:
    return load_workflow(workflow_path("dk2020")).workflow


@pytest.fixture(scope="module")
def version(dk2020: Workflow) -> CompiledWorkflow:
    return compiled(dk2020, 9_001, "sha256:diagram-cache-test", {})


def test_a_version_is_drawn_once_per_state_and_language(
    dk2020: Workflow, version: CompiledWorkflow
) -> None:
    first = workflow_svg(version, "screening", "t", language="da")
    assert workflow_svg(version, "screening", "t", language="da") is first
    assert first == workflow_svg(dk2020, "screening", "t", language="da")  # as drawn afresh
    assert workflow_svg(version, "decided", "t", language="da") != first
    assert workflow_svg(version, "screening", "t", language="en") != first
    assert workflow_svg(version, "screening", "other title", language="da") != first
    outline = workflow_outline(version, "screening", language="en")
    assert workflow_outline(version, "screening", language="en") is outline
    assert outline == workflow_outline(dk2020, "screening", language="en")


def test_a_plain_workflow_is_drawn_each_time(dk2020: Workflow) -> None:
    """A ``Workflow`` (not a stored version) has no content hash to key a drawing by."""
    assert workflow_svg(dk2020, None, "t") is not workflow_svg(dk2020, None, "t")
