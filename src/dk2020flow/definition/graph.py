"""State diagrams of a workflow: Mermaid (renders on GitHub/GitLab, no Graphviz) and dot.

Every state appears; the initial state has an arrow from the start dot and
terminal states one to the end dot. Edges carry the trigger and the roles
that may fire it (automatic transitions are marked ``auto``, triggers a timer
fires are marked with the timer). Each state lists its timers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dk2020flow.definition.model import Due, Timer, Workflow, text_in


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    automatic: bool
    timed: bool


def edges(workflow: Workflow) -> list[Edge]:
    """One edge per (source, trigger, target), ``from: "*"`` expanded."""
    timers_firing: dict[tuple[str, str], list[str]] = {}
    for state_name, state in workflow.states.items():
        for timer_name, timer in state.timers.items():
            for trigger in _timer_triggers(timer):
                timers_firing.setdefault((state_name, trigger), []).append(timer_name)
    found: list[Edge] = []
    seen: set[tuple[str, str, str]] = set()
    for transition in workflow.transitions:
        for source in workflow.sources(transition):
            key = (source, transition.trigger, transition.to)
            if key in seen or source not in workflow.states:
                continue
            seen.add(key)
            parts = [transition.trigger]
            if transition.automatic:
                parts.append("[auto]")
            elif transition.roles:
                parts.append("(" + ", ".join(transition.roles) + ")")
            timers = timers_firing.get((source, transition.trigger), [])
            if timers:
                parts.append("⏰ " + ", ".join(timers))
            found.append(
                Edge(source, transition.to, " ".join(parts), transition.automatic, bool(timers))
            )
    return found


def _timer_triggers(timer: Timer) -> list[str]:
    triggers = [timer.on_due.trigger]
    if timer.escalate is not None:
        triggers.append(timer.escalate.trigger)
    return [t for t in triggers if t is not None]


def describe_due(due: Due) -> str:
    """A short text of when a timer falls due, for diagrams."""
    if due.at is not None:
        at = due.at
        text = f"at {at.isoformat(timespec='minutes') if isinstance(at, dt.datetime) else at}"
    elif due.cohort_date is not None:
        text = f"cohort {due.cohort_date}"
    elif due.field is not None:
        text = f"field {due.field}"
    else:
        text = "entry"
    if due.after is not None:
        text += f" + {due.after}"
    if due.business_days is not None:
        text += f" + {due.business_days} business days"
    if due.time is not None:
        text += f" at {due.time}"
    return text


def _timer_lines(workflow: Workflow, state_name: str) -> list[str]:
    lines = []
    for name, timer in workflow.states[state_name].timers.items():
        line = f"⏰ {name}: {describe_due(timer.due)}"
        if timer.escalate is not None:
            line += f", escalate to {', '.join(timer.escalate.to)} after {timer.escalate.after}"
        lines.append(line)
    return lines


def _title(workflow: Workflow, state_name: str) -> str:
    title = text_in(workflow.states[state_name].title, workflow.default_language, state_name)
    return title or state_name


def _mermaid_text(text: str) -> str:
    # ':' ends a label in some Mermaid positions, and ';' ends a statement.
    return text.replace(":", "꞉").replace(";", ",").replace('"', "'").replace("\n", " ")


_MERMAID_WORDS = {"state", "note", "end", "direction", "class", "classdef", "style", "as"}


def mermaid_id(name: str) -> str:
    """A state's id in Mermaid: its name, unless that is a Mermaid keyword."""
    return f"s_{name}" if name.lower() in _MERMAID_WORDS else name


def to_mermaid(workflow: Workflow) -> str:
    title = text_in(workflow.title, workflow.default_language, workflow.workflow)
    lines = ["stateDiagram-v2", f"    %% {workflow.workflow} {workflow.version} - {title}"]
    for name, state in workflow.states.items():
        node = mermaid_id(name)
        lines.append(f"    {node} : {_mermaid_text(_title(workflow, name))}")
        if state.initial:
            lines.append(f"    [*] --> {node}")
        if state.terminal:
            lines.append(f"    {node} --> [*]")
    for edge in edges(workflow):
        source, target = mermaid_id(edge.source), mermaid_id(edge.target)
        lines.append(f"    {source} --> {target} : {_mermaid_text(edge.label)}")
    for name in workflow.states:
        timer_lines = _timer_lines(workflow, name)
        if timer_lines:
            lines.append(f"    note right of {mermaid_id(name)}")
            lines += [f"        {line}" for line in timer_lines]
            lines.append("    end note")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(workflow: Workflow) -> str:
    title = text_in(workflow.title, workflow.default_language, workflow.workflow)
    lines = [
        f"digraph {_dot_quote(workflow.workflow)} {{",
        f"    label={_dot_quote(f'{title} ({workflow.version})')};",
        "    labelloc=t;",
        "    rankdir=TB;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    __start [shape=point, width=0.2, label=""];',
    ]
    for name, state in workflow.states.items():
        label = "\n".join([_title(workflow, name), f"({name})", *_timer_lines(workflow, name)])
        attrs = [f"label={_dot_quote(label)}"]
        if state.terminal:
            attrs.append("peripheries=2")
        if state.initial:
            attrs.append("penwidth=2")
        lines.append(f"    {_dot_quote(name)} [{', '.join(attrs)}];")
        if state.initial:
            lines.append(f"    __start -> {_dot_quote(name)};")
    for edge in edges(workflow):
        attrs = [f"label={_dot_quote(edge.label)}"]
        if edge.automatic:
            attrs.append("style=dashed")
        if edge.timed:
            attrs.append("color=darkorange")
        source, target = _dot_quote(edge.source), _dot_quote(edge.target)
        lines.append(f"    {source} -> {target} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
