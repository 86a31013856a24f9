"""Property tests: whatever the loader is fed, it returns a valid definition or located diagnostics.

Never another exception: a traceback in front of a process owner is a bug.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from definition_helpers import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dk2020flow.definition import DefinitionError, LoadedWorkflow, load_workflow, load_workflow_text
from dk2020flow.definition.diagnostics import CODES
from dk2020flow.definition.source import read_yaml
from dk2020flow.definition.template_check import read_template_dir

DK2020 = REPO / "workflows" / "dk2020.yaml"
DK2020_TEXT = DK2020.read_text(encoding="utf-8")
DK2020_DATA: dict[str, Any] = read_yaml(DK2020_TEXT, "dk2020.yaml").data or {}
DK2020_TEMPLATES = dict(read_template_dir(REPO / "notifications" / "dk2020")[0].sources)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WHOLE = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""A whole DK2020 document takes ~0.2 s to load (ruamel's round-trip parser is pure Python)."""


def assert_outcome(load: Any, text_lines: int) -> LoadedWorkflow | None:
    """Loading gives a workflow, or a DefinitionError whose every diagnostic is located."""
    try:
        return load()  # type: ignore[no-any-return]
    except DefinitionError as exc:
        error = exc
    assert error.errors, "a DefinitionError must carry at least one error"
    for diagnostic in error.diagnostics:
        assert diagnostic.code in CODES
        assert diagnostic.line >= 1 and diagnostic.column >= 1
        if not diagnostic.file.endswith(".jinja"):
            assert diagnostic.line <= text_lines + 1, str(diagnostic)
        assert diagnostic.message
    return None


def _lines(text: str) -> int:
    return text.count("\n") + 1


@FAST
@given(st.binary(max_size=400))
def test_random_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.yaml"
        path.write_bytes(raw)
        assert_outcome(lambda: load_workflow(path, templates={}), raw.count(b"\n") + 1)


YAMLISH = st.text(alphabet=st.sampled_from(list("abc:-[]{}&*!?|>'\"#,.\n\t 0129PTDM%@`")))


@FAST
@given(YAMLISH)
def test_random_yaml_like_text(text: str) -> None:
    assert_outcome(lambda: load_workflow_text(text, "random.yaml"), _lines(text))


# ----------------------------------------------------------------------------- mutations


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(DK2020_DATA)[1:]
LEAVES: list[Any] = []
for _path in PATHS:
    _node: Any = DK2020_DATA
    for _step in _path:
        _node = _node[_step]
    if not isinstance(_node, dict | list):
        LEAVES.append(_node)

VALUES = st.one_of(
    st.sampled_from(LEAVES),
    st.none(),
    st.booleans(),
    st.integers(-10, 10**6),
    st.text(max_size=12),
    st.sampled_from(["P-1D", "PT", "P1M", "-P3D", "25:00", "2020-02-30", "*", "Europe/Nowhere"]),
    st.lists(st.sampled_from(LEAVES), max_size=3),
    st.dictionaries(st.sampled_from(["to", "template", "x", "when"]), st.sampled_from(LEAVES)),
)


def _copy(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


def _mutate(data: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif action == "rename" and isinstance(parent[last], str):
        parent[last] = parent[last][::-1] or "x"
    elif action == "rename_key" and isinstance(parent, dict):
        parent[f"{last}_renamed"] = parent.pop(last)
    return data


def _as_text(data: Any) -> str:
    """JSON is YAML: a mutated document goes back through the real text path."""

    def default(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.date) else str(value)

    return json.dumps(data, indent=1, default=default, ensure_ascii=False)


MUTATION = st.tuples(
    st.sampled_from(PATHS),
    st.sampled_from(["delete", "replace", "rename", "rename_key"]),
    VALUES,
)


@WHOLE
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_dk2020_documents(mutations: list[tuple[tuple[Any, ...], str, Any]]) -> None:
    data = _copy(DK2020_DATA)
    for path, action, value in mutations:
        try:
            data = _mutate(data, path, action, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or reshaped this path
    text = _as_text(data)
    assert_outcome(lambda: load_workflow_text(text, "mutated.yaml"), _lines(text))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MUTATION)
def test_mutated_dk2020_with_its_templates(mutation: tuple[tuple[Any, ...], str, Any]) -> None:
    path, action, value = mutation
    text = _as_text(_mutate(_copy(DK2020_DATA), path, action, value))
    load = lambda: load_workflow_text(text, "mutated.yaml", templates=DK2020_TEMPLATES)  # noqa: E731
    assert_outcome(load, _lines(text))


@WHOLE
@given(
    st.lists(
        st.tuples(st.sampled_from(["drop", "dup", "swap", "indent"]), st.integers(0, 10**6)),
        min_size=1,
        max_size=3,
    )
)
def test_line_edits_of_dk2020(edits: list[tuple[str, int]]) -> None:
    lines = DK2020_TEXT.splitlines()
    for action, seed in edits:
        index = seed % len(lines)
        if action == "drop":
            del lines[index]
        elif action == "dup":
            lines.insert(index, lines[index])
        elif action == "swap":
            other = (seed // len(lines)) % len(lines)
            lines[index], lines[other] = lines[other], lines[index]
        else:
            lines[index] = " " + lines[index]
    text = "\n".join(lines) + "\n"
    assert_outcome(lambda: load_workflow_text(text, "edited.yaml"), _lines(text))


def test_unmutated_dk2020_through_json_is_valid() -> None:
    """The mutation harness itself is sound: no mutation, no diagnostics."""
    loaded = load_workflow_text(
        _as_text(_copy(DK2020_DATA)), "same.yaml", templates=DK2020_TEMPLATES
    )
    assert loaded.workflow.states == load_workflow(DK2020).workflow.states
