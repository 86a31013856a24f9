"""The private cache of parsed stored definitions (definition/cache.py, #15.18).

A stored text parsed once is read back as JSON (no YAML parse); the cache is private,
keyed by content and the model, and a file that is not exactly what it wrote is a miss.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dk2020flow.definition import cache
from dk2020flow.definition.diagnostics import DefinitionError
from dk2020flow.definition.loader import load_workflow_text

REPO = Path(__file__).resolve().parents[3]
TEXT = (REPO / "workflows" / "dk2020.yaml").read_text(encoding="utf-8")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV_DIR, str(root))
    return root


def _entry(root: Path, text: str = TEXT) -> Path:
    return root / "definitions" / f"{cache.entry_key(text)}.json"


def test_a_stored_text_is_parsed_once_and_read_back_equal(folder: Path) -> None:
    parsed = load_workflow_text(TEXT, "dk2020.yaml")
    entry = _entry(folder)
    assert entry.is_file()
    assert cache.cached_workflow(TEXT) == parsed.workflow
    again = load_workflow_text(TEXT, "dk2020.yaml")
    assert again.workflow == parsed.workflow
    assert again.content_hash == parsed.content_hash
    assert (again.source_text, again.warnings, dict(again.templates)) == (TEXT, (), {})


def test_the_folder_and_entries_are_private(folder: Path) -> None:
    load_workflow_text(TEXT, "dk2020.yaml")
    for path in (folder, folder / "definitions"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE(_entry(folder).stat().st_mode) == 0o600


def test_a_hit_does_not_import_the_yaml_parser(folder: Path) -> None:
    load_workflow_text(TEXT, "dk2020.yaml")
    probe = (
        "import sys; from pathlib import Path;"
        "from dk2020flow.definition.loader import load_workflow_text;"
        f"load_workflow_text(Path({str(REPO / 'workflows' / 'dk2020.yaml')!r})"
        ".read_text(encoding='utf-8'), 'dk2020.yaml');"
        "print(sorted(m for m in ('ruamel.yaml', 'jinja2') if m in sys.modules))"
    )
    env = {**os.environ, cache.ENV_DIR: str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda p: p.chmod(0o644), id="readable by others"),
        pytest.param(lambda p: p.write_bytes(b"not the key\n{}"), id="another key"),
        pytest.param(
            lambda p: p.write_bytes(p.read_bytes().split(b"\n")[0] + b'\n{"workflow": 1}'),
            id="not a Workflow",
        ),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:-40]), id="cut short"),
    ],
)
def test_an_entry_not_exactly_as_written_is_a_miss_and_is_replaced(
    folder: Path, spoil: object
) -> None:
    parsed = load_workflow_text(TEXT, "dk2020.yaml")
    entry = _entry(folder)
    spoil(entry)  # type: ignore[operator]
    assert cache.cached_workflow(TEXT) is None
    assert load_workflow_text(TEXT, "dk2020.yaml").workflow == parsed.workflow
    assert cache.cached_workflow(TEXT) == parsed.workflow
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600


def test_a_symbolic_link_or_an_open_folder_is_not_used(folder: Path, tmp_path: Path) -> None:
    parsed = load_workflow_text(TEXT, "dk2020.yaml")
    entry = _entry(folder)
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_bytes(entry.read_bytes())
    elsewhere.chmod(0o600)
    entry.unlink()
    entry.symlink_to(elsewhere)
    assert cache.cached_workflow(TEXT) is None
    entry.unlink()
    load_workflow_text(TEXT, "dk2020.yaml")
    (folder / "definitions").chmod(0o770)
    assert cache.cached_workflow(TEXT) is None
    assert not cache.remember_workflow(TEXT, parsed.workflow)


def test_the_key_holds_the_text_and_the_model() -> None:
    assert cache.entry_key(TEXT) != cache.entry_key(TEXT + "\n# one more comment\n")
    assert cache.entry_key(TEXT) == cache.entry_key(TEXT)
    cache._model_fingerprint.cache_clear()
    assert len(cache._model_fingerprint()) == 64


def test_a_text_that_fails_is_not_cached_and_fails_each_time(folder: Path) -> None:
    broken = TEXT.replace("workflow: dk2020", "workflow: [dk2020", 1)
    for _ in range(2):
        with pytest.raises(DefinitionError):
            load_workflow_text(broken, "broken.yaml")
    assert not _entry(folder, broken).exists()


@pytest.mark.parametrize("value", ["", "off"])
def test_the_cache_can_be_switched_off(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.ENV_DIR, value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_root() is None
    load_workflow_text(TEXT, "dk2020.yaml")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_is_only_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder would be")
    monkeypatch.setenv(cache.ENV_DIR, str(blocked / "cache"))
    parsed = load_workflow_text(TEXT, "dk2020.yaml")
    assert cache.cached_workflow(TEXT) is None
    assert parsed.workflow.workflow == "dk2020"
