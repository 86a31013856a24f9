"""The workflows and templates shipped inside the package (for installs without a clone)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_workflows() -> dict[str, Path]:
    """Shipped workflow files by name (``dk2020``, ``eu_mission``, ``status_reports``)."""
    folder = Path(str(resources.files("dk2020flow").joinpath("_bundled/workflows")))
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def workflow_path(given: str | Path) -> Path:
    """A workflow file: the path as given if it exists, else a shipped workflow of that name.

    So ``dk2020flow workflow load dk2020`` works from an empty directory. A path
    that is neither is returned as given, and loading it reports a clear error.
    """
    path = Path(given)
    if path.exists():
        return path
    return bundled_workflows().get(str(given), path)


PROFILE_FOLDER = "behaviour"
"""Where a workflow's own simulation profile sits, beside the workflow file."""


def own_profile(workflow_file: Path, workflow: str) -> Path:
    """``<the workflow file's folder>/behaviour/<workflow>.yaml``: the profile ``simulate``
    uses for the workflow when none is given (the shipped programmes have theirs)."""
    return workflow_file.parent / PROFILE_FOLDER / f"{workflow}.yaml"
