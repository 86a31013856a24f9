"""Loading a workflow file: bytes → YAML with positions → ``Workflow`` → validated.

``load_workflow`` is the one door through which a workflow enters the system.
It either returns a ``LoadedWorkflow`` (immutable, with the templates it
names and a content hash that versions both) or raises ``DefinitionError``
with every problem found, each located at FILE:LINE:COLUMN.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from dk2020flow.definition.cache import cached_workflow, remember_workflow
from dk2020flow.definition.diagnostics import DefinitionError, Diagnostic

if TYPE_CHECKING:
    from dk2020flow.definition.model import Workflow
    from dk2020flow.definition.partial import Damage

# The parser (ruamel.yaml), the schema's error reports and the checks are imported where a
# text is parsed: a stored definition found in the cache (``definition/cache.py``) needs
# none of them (#15.18).

TemplateSource = Path | Mapping[str, str]
"""A folder of ``<template>.<lang>.jinja`` files, or their texts by file name."""

ImpliedDefaults = Mapping[str, str | None]
"""What a workflow text that leaves a key unsaid means by it, as a stored definition
records it (``definitions.implied_defaults``): ``timezone`` and ``calendar_country``
(None: a calendar without public holidays). A key the record lacks takes this code's
default (:func:`current_defaults`)."""


def current_defaults() -> dict[str, str | None]:
    """The defaults this code gives a text that leaves them unsaid (the model's defaults),
    recorded with every definition it stores."""
    from dk2020flow.definition.model import Calendar, Workflow

    return {
        "timezone": Workflow.model_fields["timezone"].default,
        "calendar_country": Calendar.model_fields["country"].default,
    }


@dataclass(frozen=True, kw_only=True)
class LoadedWorkflow:
    """A workflow that passed every check, with the template texts it uses."""

    workflow: Workflow
    source_text: str
    path: Path
    templates: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    content_hash: str
    warnings: tuple[Diagnostic, ...] = ()
    template_dir: Path | None = None

    @property
    def organisations_file(self) -> Path | None:
        """The ``organisations:`` data set's path (checked to exist when loaded from a file)."""
        if self.workflow.organisations is None:
            return None
        return self.path.absolute().parent.resolve() / self.workflow.organisations


def default_template_dir(path: Path, workflow_name: str) -> Path:
    """``<folder>/dk2020.yaml`` → ``<folder>/../notifications/dk2020/``, however the path is spelled.

    The folder is taken from the file's place on disk (made absolute, symbolic links in
    it followed, as ``cd <folder>/..`` would), never from the spelling of ``path``: a bare
    ``covenant.yaml`` has the lexical parent ``.`` twice over, so ``path.parent.parent``
    once found ``./notifications`` for it but ``<cwd>/../notifications`` for its absolute
    spelling. See docs/workflow-format.md, "Where the templates are".
    """
    folder = path.absolute().parent.resolve()
    return folder.parent / "notifications" / workflow_name


def load_workflow(
    path: Path, *, templates: TemplateSource | None = None, check_templates: bool = True
) -> LoadedWorkflow:
    """Read, parse and validate the workflow file at ``path``.

    ``templates`` defaults to the folder ``../notifications/<workflow name>/`` beside
    the file's folder (:func:`default_template_dir`). ``check_templates=False`` skips the template checks (for a
    diagram of a workflow whose mails are not written yet).
    """
    from dk2020flow.definition.source import MAX_BYTES, decode

    file = str(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
            size = os.fstat(stream.fileno()).st_size
    except OSError as exc:
        raise DefinitionError([_unreadable(file, exc)]) from None
    text, problems = decode(raw, file, size=size)
    if text is None:
        raise DefinitionError(problems)
    return _load(text, file, path, templates, default_dir=True, check_templates=check_templates)


def load_workflow_text(
    text: str,
    name: str,
    *,
    templates: Mapping[str, str] | None = None,
    implied: ImpliedDefaults | None = None,
) -> LoadedWorkflow:
    """Load a workflow from its text (e.g. a stored definition); ``name`` labels diagnostics.

    Gives the same ``Workflow`` and content hash as ``load_workflow`` on a file with
    this text and these templates. ``implied`` are the defaults a stored definition was
    loaded under (its row's ``implied_defaults``): they fill the keys the text leaves
    unsaid, so a stored version keeps its meaning when this code's defaults change.
    Without ``templates`` the template checks are skipped, and a text parsed before
    (without warnings) is read from the private cache of ``definition/cache.py`` instead
    of parsed again.
    """
    cache_text = _cache_text(text, implied)
    if templates is None:
        known = cached_workflow(cache_text)
        if known is not None:
            return LoadedWorkflow(
                workflow=known,
                source_text=text,
                path=Path(name),
                content_hash=content_hash(text, {}),
            )
    from dk2020flow.definition.source import decode

    raw = text.encode("utf-8", errors="surrogatepass")
    decoded, problems = decode(raw, name)
    if decoded is None:
        raise DefinitionError(problems)
    loaded = _load(
        decoded,
        name,
        Path(name),
        templates,
        default_dir=False,
        check_templates=templates is not None,
        implied=implied,
    )
    if templates is None and decoded == text and not loaded.warnings:
        remember_workflow(cache_text, loaded.workflow)
    return loaded


def _cache_text(text: str, implied: ImpliedDefaults | None) -> str:
    """What the parse cache keys ``text`` by: the text, and the defaults it is read with
    when they are not this code's (the same text means another workflow under others)."""
    if not implied:
        return text
    filled = {**current_defaults(), **implied}
    if filled == current_defaults():
        return text
    return f"{text}\0implied {json.dumps(filled, sort_keys=True)}"


def with_implied_defaults(data: dict[str, Any], implied: ImpliedDefaults) -> dict[str, Any]:
    """The parsed YAML ``data`` with the keys it leaves unsaid filled from ``implied``
    (a shallow copy)."""
    filled = dict(data)
    if "timezone" in implied and "timezone" not in filled:
        filled["timezone"] = implied["timezone"]
    if "calendar_country" in implied:
        calendar = filled.get("calendar", {})
        if isinstance(calendar, Mapping) and "country" not in calendar:
            filled["calendar"] = {**calendar, "country": implied["calendar_country"]}
    return filled


def _load(
    text: str,
    file: str,
    path: Path,
    templates: TemplateSource | None,
    *,
    default_dir: bool,
    check_templates: bool,
    implied: ImpliedDefaults | None = None,
) -> LoadedWorkflow:
    from pydantic import ValidationError

    from dk2020flow.definition.model import Workflow
    from dk2020flow.definition.partial import salvage
    from dk2020flow.definition.schema_errors import schema_diagnostics
    from dk2020flow.definition.source import read_yaml
    from dk2020flow.definition.template_check import TemplateSet, read_template_dir
    from dk2020flow.definition.validate import validate

    document = read_yaml(text, file)
    if document.data is None:
        raise DefinitionError(document.diagnostics)
    locator = document.locator
    data = document.data if not implied else with_implied_defaults(document.data, implied)
    damage: Damage | None = None
    problems: list[Diagnostic] = []
    try:
        workflow = Workflow.model_validate(data)
    except ValidationError as exc:
        # Report every independent problem at once: check what the shape errors leave.
        problems += schema_diagnostics(exc, locator, file)
        salvaged = salvage(data, locator, exc)
        if salvaged is None:
            raise DefinitionError(problems) from None
        workflow, locator, damage = salvaged
        if damage.templates:  # the name or languages are broken: the templates are unknown
            check_templates, templates, default_dir = False, None, False

    template_set = TemplateSet(sources={}, directory=None)
    if isinstance(templates, Mapping):
        template_set = TemplateSet(sources=dict(templates), directory=None)
    elif templates is not None or default_dir:
        directory = templates or default_template_dir(path, workflow.workflow)
        template_set, unreadable = read_template_dir(directory)
        problems += unreadable

    problems += validate(
        workflow,
        locator,
        file,
        templates=template_set if check_templates else None,
        damage=damage,
        folder=path.absolute().parent.resolve() if default_dir else None,
    )
    if damage is not None or any(problem.is_error for problem in problems):
        raise DefinitionError(problems)
    return LoadedWorkflow(
        workflow=workflow,
        source_text=text,
        path=path,
        templates=MappingProxyType(dict(template_set.sources)),
        content_hash=content_hash(text, template_set.sources),
        warnings=tuple(problems),
        template_dir=template_set.directory,
    )


def content_hash(text: str, templates: Mapping[str, str]) -> str:
    """sha256 (hex) over the workflow text and its templates, sorted by file name."""
    digest = hashlib.sha256()

    def part(label: str, content: str) -> None:
        data = content.encode("utf-8", errors="surrogatepass")
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    part("workflow", text)
    for name in sorted(templates):
        part(f"template:{name}", templates[name])
    return digest.hexdigest()


def _unreadable(file: str, exc: OSError) -> Diagnostic:
    if isinstance(exc, FileNotFoundError):
        message, hint = "no such file", "check the path"
    elif isinstance(exc, IsADirectoryError):
        message, hint = "this is a folder, not a file", "name a .yaml file inside it"
    elif isinstance(exc, PermissionError):
        message, hint = "permission denied", "check the file's permissions"
    else:
        message, hint = f"cannot read the file ({exc.strerror or exc})", "check the path"
    return Diagnostic(file=file, line=1, column=1, code="DF001", message=message, hint=hint)
