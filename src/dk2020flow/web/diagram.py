"""A workflow's state diagram as accessible inline SVG, drawn on the server.

States are laid out in layers from the initial state along the transitions (the
longest path without going back, so the main course reads top to bottom); a
transition back to an earlier layer is drawn as a curve on the right. Transitions
``from: "*"`` (from every open state) are not drawn from every state: their target
says so. The current state is filled and says "current state" in words (never
colour alone). Every text is escaped; there are no ``style`` attributes (the
Content-Security-Policy forbids inline styles) — only presentation attributes.

``workflow_outline`` gives the same information as a list, for screen readers and
for anyone who prefers text.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from markupsafe import Markup, escape

from dk2020flow.definition.model import ANY_OPEN_STATE, Workflow, text_in
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.web.i18n import Translator

BOX_WIDTH = 210
BOX_HEIGHT = 46
GAP_X = 40
GAP_Y = 34
MARGIN = 20
BACK_LANE = 40
MAX_TITLE = 28
MAX_NOTE = 36

_ID = re.compile(r"[^A-Za-z0-9_-]")

INK = "#1a1a1a"
LINE = "#595959"
CURRENT_FILL = "#004993"
CURRENT_INK = "#ffffff"
FILL = "#ffffff"
TERMINAL_FILL = "#f5f5f5"


@dataclass(frozen=True, slots=True)
class _Edge:
    source: str
    target: str
    triggers: tuple[str, ...]


def _edges(workflow: Workflow) -> list[_Edge]:
    """One edge per (source, target) of the transitions not ``from: "*"``."""
    triggers: dict[tuple[str, str], list[str]] = defaultdict(list)
    for transition in workflow.transitions:
        if ANY_OPEN_STATE in transition.from_:
            continue
        for source in transition.from_:
            key = (source, transition.to)
            if source in workflow.states and transition.trigger not in triggers[key]:
                triggers[key].append(transition.trigger)
    return [_Edge(s, t, tuple(names)) for (s, t), names in triggers.items()]


def _layers(workflow: Workflow, edges: list[_Edge]) -> dict[str, int]:
    """Each state's layer: how many transitions it is from the initial state (a
    breadth-first walk), so the main course reads top to bottom."""
    outgoing: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        outgoing[edge.source].append(edge.target)
    layer = {workflow.initial_state: 0}
    queue = [workflow.initial_state]
    while queue:
        state = queue.pop(0)
        for target in outgoing[state]:
            if target not in layer:
                layer[target] = layer[state] + 1
                queue.append(target)
    last = max(layer.values(), default=0) + 1
    for state in workflow.states:
        layer.setdefault(state, last)  # reached only from every state ("*"), or not at all
    return layer


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else float("inf")


def _short(text: str, limit: int = MAX_TITLE) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _state_title(workflow: Workflow, state: str, language: str) -> str:
    return text_in(workflow.states[state].title, language, state) or state


def _trigger_title(workflow: Workflow, trigger: str, language: str) -> str:
    found = workflow.transitions_named(trigger)
    return (text_in(found[0].title, language, trigger) if found else "") or trigger


def _from_everywhere(workflow: Workflow) -> dict[str, list[str]]:
    """Target state -> triggers that lead there from every open state."""
    found: dict[str, list[str]] = defaultdict(list)
    for transition in workflow.transitions:
        if ANY_OPEN_STATE in transition.from_ and transition.trigger not in found[transition.to]:
            found[transition.to].append(transition.trigger)
    return found


def workflow_svg(
    workflow: Workflow | CompiledWorkflow,
    current_state: str | None,
    title: str,
    *,
    language: str = "da",
) -> Markup:
    """The workflow's states and transitions as an ``<svg role="img">`` with a
    ``<title>`` (``title``) and a ``<desc>``; ``current_state`` is highlighted.

    A stored version's drawing (a ``CompiledWorkflow``: its content never changes) is
    kept per (content hash, state, title, language), so a case page draws its diagram
    once per state, not on every request."""
    if isinstance(workflow, CompiledWorkflow):
        key = ("svg", workflow.content_hash, current_state, title, language)
        found = _DRAWN.get(key)
        if found is None:
            found = _keep(key, _svg(workflow.workflow, current_state, title, language))
        return found
    return _svg(workflow, current_state, title, language)


_DRAWN: dict[tuple[str | None, ...], Markup] = {}
_DRAWN_LIMIT = 512
"""Drawings kept (states × languages × the versions in use: a few dozen in practice)."""


def _keep(key: tuple[str | None, ...], drawn: Markup) -> Markup:
    if len(_DRAWN) >= _DRAWN_LIMIT:
        _DRAWN.clear()  # rare: many versions in use; start again rather than grow
    _DRAWN[key] = drawn
    return drawn


def _svg(wf: Workflow, current_state: str | None, title: str, language: str) -> Markup:
    tr = Translator(language)
    edges = _edges(wf)
    layer = _layers(wf, edges)
    rows: dict[int, list[str]] = defaultdict(list)
    for state in wf.states:
        rows[layer[state]].append(state)
    columns = max(len(r) for r in rows.values())
    width = MARGIN * 2 + columns * BOX_WIDTH + (columns - 1) * GAP_X + BACK_LANE
    height = MARGIN * 2 + len(rows) * BOX_HEIGHT + (len(rows) - 1) * GAP_Y
    inner = columns * BOX_WIDTH + (columns - 1) * GAP_X
    position: dict[str, tuple[float, float]] = {}
    column: dict[str, int] = {}
    parents: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        if layer[edge.target] == layer[edge.source] + 1:
            parents[edge.target].append(edge.source)
    for index, number in enumerate(sorted(rows)):
        states = rows[number]
        if index:  # under their parents, to keep lines from crossing
            states.sort(key=lambda s: _mean([column[p] for p in parents[s] if p in column]))
        used = len(states) * BOX_WIDTH + (len(states) - 1) * GAP_X
        x0 = MARGIN + (inner - used) / 2
        top = float(MARGIN + index * (BOX_HEIGHT + GAP_Y))
        for i, state in enumerate(states):
            position[state] = (x0 + i * (BOX_WIDTH + GAP_X), top)
            column[state] = i

    uid = _ID.sub("-", f"wf-{wf.workflow}-{current_state or 'none'}")
    title_id, desc_id = f"{uid}-title", f"{uid}-desc"
    current = (
        tr.t("diagram.desc_current", state=_state_title(wf, current_state, language))
        if current_state in wf.states and current_state is not None
        else ""
    )
    desc = tr.t("diagram.desc", states=len(wf.states), transitions=len(wf.transitions))
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="app-diagram" role="img" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'aria-labelledby="{title_id} {desc_id}">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(desc)} {escape(current)}</desc>',
        "<defs>",
        f'<marker id="{uid}-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" '
        f'fill="{LINE}"/></marker>',
        "</defs>",
    ]
    back = 0
    for edge in edges:
        if edge.source == edge.target:
            continue  # a transition within the state: listed in the outline
        sx, sy = position[edge.source]
        tx, ty = position[edge.target]
        names = ", ".join(_trigger_title(wf, t, language) for t in edge.triggers)
        label = tr.t(
            "diagram.edge",
            source=_state_title(wf, edge.source, language),
            target=_state_title(wf, edge.target, language),
            triggers=names,
        )
        same_row = layer[edge.target] == layer[edge.source]
        neighbours = same_row and abs(column[edge.target] - column[edge.source]) == 1
        mid_y = sy + BOX_HEIGHT / 2
        if layer[edge.target] == layer[edge.source] + 1:
            path = (
                f"M{sx + BOX_WIDTH / 2:.0f} {sy + BOX_HEIGHT:.0f} "
                f"L{tx + BOX_WIDTH / 2:.0f} {ty:.0f}"
            )
        elif neighbours:  # side by side: straight across
            leftwards = tx < sx
            start = sx if leftwards else sx + BOX_WIDTH
            end = tx + BOX_WIDTH if leftwards else tx
            path = f"M{start:.0f} {mid_y + 6:.0f} L{end:.0f} {mid_y + 6:.0f}"
        else:  # back, or further on: below the source, up the right-hand lane, in from above
            back += 1
            lane = MARGIN + inner + 10 + (back % 3) * 10
            out_x = sx + BOX_WIDTH / 2 + 24
            in_x = tx + BOX_WIDTH / 2 + 24
            below = sy + BOX_HEIGHT + GAP_Y / 2 - 4 + (back % 3) * 3
            above = ty - GAP_Y / 2 + 4 - (back % 3) * 3
            path = (
                f"M{out_x:.0f} {sy + BOX_HEIGHT:.0f} L{out_x:.0f} {below:.0f} "
                f"L{lane:.0f} {below:.0f} L{lane:.0f} {above:.0f} "
                f"L{in_x:.0f} {above:.0f} L{in_x:.0f} {ty:.0f}"
            )
        parts.append(
            f'<path d="{path}" fill="none" stroke="{LINE}" stroke-width="1.5" '
            f'marker-end="url(#{uid}-arrow)"><title>{escape(label)}</title></path>'
        )
    everywhere = _from_everywhere(wf)
    for state, (x, y) in position.items():
        spec = wf.states[state]
        is_current = state == current_state
        fill = CURRENT_FILL if is_current else (TERMINAL_FILL if spec.terminal else FILL)
        ink = CURRENT_INK if is_current else INK
        name = _state_title(wf, state, language)
        notes = []
        if is_current:
            notes.append(tr.t("diagram.current"))
        if spec.initial:
            notes.append(tr.t("diagram.initial"))
        if spec.terminal:
            notes.append(tr.t("diagram.terminal"))
        if state in everywhere:
            notes.append(tr.t("diagram.from_everywhere"))
        tooltip = name + (f" ({', '.join(notes)})" if notes else "")
        parts.append(
            f'<g class="app-diagram-state{" app-diagram-current" if is_current else ""}">'
            f"<title>{escape(tooltip)}</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="8" '
            f'fill="{fill}" stroke="{INK}" stroke-width="{3 if is_current else 1.5}"/>'
        )
        if spec.terminal:
            parts.append(
                f'<rect x="{x + 3:.0f}" y="{y + 3:.0f}" width="{BOX_WIDTH - 6}" '
                f'height="{BOX_HEIGHT - 6}" rx="6" fill="none" stroke="{INK}" stroke-width="1"/>'
            )
        second = ", ".join(notes)
        text_y = y + (BOX_HEIGHT / 2 - 3 if second else BOX_HEIGHT / 2 + 5)
        weight = ' font-weight="bold"' if is_current else ""
        parts.append(
            f'<text x="{x + BOX_WIDTH / 2:.0f}" y="{text_y:.0f}" text-anchor="middle" '
            f'font-family="sans-serif" font-size="14" fill="{ink}"'
            f"{weight}>{escape(_short(name))}</text>"
        )
        if second:
            parts.append(
                f'<text x="{x + BOX_WIDTH / 2:.0f}" y="{y + BOX_HEIGHT - 9:.0f}" '
                f'text-anchor="middle" font-family="sans-serif" font-size="11" '
                f'fill="{ink}">{escape(_short(second, MAX_NOTE))}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above went through escape()


def workflow_outline(
    workflow: Workflow | CompiledWorkflow, current_state: str | None, *, language: str = "da"
) -> Markup:
    """The diagram as a nested list: each state, whether it is the current one, and
    where each of its transitions leads (by which trigger); kept as ``workflow_svg``
    keeps its drawings."""
    if isinstance(workflow, CompiledWorkflow):
        key = ("outline", workflow.content_hash, current_state, language)
        found = _DRAWN.get(key)
        if found is None:
            found = _keep(key, _outline(workflow.workflow, current_state, language))
        return found
    return _outline(workflow, current_state, language)


def _outline(wf: Workflow, current_state: str | None, language: str) -> Markup:
    tr = Translator(language)
    items: list[str] = []
    for state, spec in wf.states.items():
        name = escape(_state_title(wf, state, language))
        marks = []
        if state == current_state:
            marks.append(tr.t("diagram.current"))
        if spec.initial:
            marks.append(tr.t("diagram.initial"))
        if spec.terminal:
            marks.append(tr.t("diagram.terminal"))
        head = f"<strong>{name}</strong>" if state == current_state else str(name)
        if marks:
            head += f" ({escape(', '.join(marks))})"
        moves = [
            tr.t(
                "diagram.move",
                trigger=_trigger_title(wf, t.trigger, language),
                target=_state_title(wf, t.to, language),
            )
            for t in wf.transitions
            if state in wf.sources(t)
        ]
        sub = "".join(f"<li>{escape(m)}</li>" for m in moves)
        current = ' aria-current="step"' if state == current_state else ""
        items.append(f"<li{current}>{head}{f'<ul>{sub}</ul>' if sub else ''}</li>")
    return Markup(f'<ul class="app-diagram-outline">{"".join(items)}</ul>')  # noqa: S704
