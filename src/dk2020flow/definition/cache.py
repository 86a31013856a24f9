"""A private on-disk cache of parsed stored definitions (#15.18: a command's start-up).

A definition stored in the database passed every check when it was loaded, and its text
never changes; yet each command that compiles it (``case show``, ``case open``, ``report``)
parsed the YAML again with ruamel's round-trip loader: about 0.25 s of a 1 s command. The
cache keeps the parsed ``Workflow`` as pydantic's JSON, which ``Workflow.model_validate_json``
reads back in about 2 ms.

Safety: the cache is an optimisation, never a source of truth.

- Keyed by the SHA-256 of the definition's text, dk2020flow's and pydantic's versions and
  the source of the modules that define the ``Workflow`` model: a changed model (even in an
  editable install with the same version) misses, it never reads an old shape.
- Private: the folder is made ``0700``, each file ``0600``; a folder or file that is not
  the user's own, is readable by others, or is a symbolic link is neither read nor written.
- Never trusted blindly: a file whose first line is not its key, or whose JSON does not
  validate as a ``Workflow``, is ignored (and replaced on the next write); an entry is
  written only when reading it back gives a ``Workflow`` equal to the one parsed.
- Any error (no home folder, a read-only disk, a full disk) only means a miss.

The folder is ``$DK2020FLOW_CACHE_DIR`` (empty or ``off``: no cache), else
``$XDG_CACHE_HOME/dk2020flow``, else ``~/.cache/dk2020flow``; entries live in its
``definitions/`` subfolder and can be deleted at any time.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dk2020flow.definition.model import Workflow

ENV_DIR = "DK2020FLOW_CACHE_DIR"
MAX_ENTRY_BYTES = 8 * 1024 * 1024
_FORMAT = "dk2020flow-definition-cache 1"
_MODEL_SOURCES = ("model.py", "durations.py")


def cache_root() -> Path | None:
    """The cache folder from the environment, or None when the cache is off."""
    configured = os.environ.get(ENV_DIR)
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "none", "0") else Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "dk2020flow"
    try:
        return Path.home() / ".cache" / "dk2020flow"
    except RuntimeError:  # no home folder
        return None


@lru_cache(maxsize=1)
def _model_fingerprint() -> str:
    """What the cached JSON's shape depends on: versions and the model's source."""
    from pydantic.version import VERSION

    from dk2020flow import __version__

    digest = hashlib.sha256(f"{_FORMAT}\0{__version__}\0{VERSION}\0".encode())
    here = Path(__file__).parent
    for name in _MODEL_SOURCES:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()


def entry_key(text: str) -> str:
    """The key of ``text``'s entry (hex): its hash with the model's fingerprint."""
    digest = hashlib.sha256(_model_fingerprint().encode() + b"\0")
    digest.update(text.encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()


def _private(path: Path) -> bool:
    """``path`` is the user's own, not a symbolic link and closed to group and others."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return (
        not stat.S_ISLNK(info.st_mode)
        and info.st_uid == os.getuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def _folder(create: bool) -> Path | None:
    if not hasattr(os, "getuid"):  # pragma: no cover - no owner checks on this platform
        return None
    root = cache_root()
    if root is None:
        return None
    folder = root / "definitions"
    if create:
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            return None
    return folder if _private(root) and _private(folder) else None


def cached_workflow(text: str) -> Workflow | None:
    """The ``Workflow`` parsed from ``text`` earlier, or None (a miss)."""
    try:
        folder = _folder(create=False)
        if folder is None:
            return None
        key = entry_key(text)
        fd = os.open(folder / f"{key}.json", os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as stream:
            info = os.fstat(stream.fileno())
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.getuid()
                or stat.S_IMODE(info.st_mode) & 0o077
                or info.st_size > MAX_ENTRY_BYTES
            ):
                return None
            data = stream.read(MAX_ENTRY_BYTES + 1)
    except (OSError, ValueError):
        return None
    first, _, body = data.partition(b"\n")
    if first != key.encode():
        return None
    from pydantic import ValidationError

    from dk2020flow.definition.model import Workflow

    try:
        return Workflow.model_validate_json(body)
    except (ValidationError, ValueError):
        return None


def remember_workflow(text: str, workflow: Workflow) -> bool:
    """Keep ``workflow`` as parsed from ``text``; True when an entry was written."""
    from dk2020flow.definition.model import Workflow

    body = workflow.model_dump_json().encode()
    if Workflow.model_validate_json(body) != workflow:  # pragma: no cover - a model change
        return False
    try:
        folder = _folder(create=True)
        if folder is None:
            return False
        key = entry_key(text)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".entry-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(key.encode() + b"\n" + body)
            os.replace(temporary, folder / f"{key}.json")
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        return False
    return True
