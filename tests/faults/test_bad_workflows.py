"""Broken workflow files and templates through the installed `dk2020flow workflow validate`.

The corpus (``tests/faults/corpus/``) holds syntax errors, bad references, unreachable states,
files that are not UTF-8 text, YAML bombs, and templates with syntax errors, undefined
variables and sandbox escapes. Each file must give located diagnostics (FILE:LINE:COLUMN: CODE,
in the template file for a template problem), exit 2 and never a traceback; no escape may
render. A seeded CLI-level fuzz adds mutated and random files (the loader itself is fuzzed with
hypothesis in ``tests/unit/definition``)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from .conftest import CORPUS, DK2020, Cli

WORKFLOWS = CORPUS / "workflows"
NOT_TEXT = {"latin1": "DF003", "utf16": "DF003", "binary_nul": "DF003", "empty": "DF004"}
"""Files that cannot carry an ``# expect:`` comment."""
EXPECT = re.compile(r"^# expect: (\S+)( template)?$", re.MULTILINE)
LOCATED = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<column>\d+): (?P<code>DF\d{3}) \S")
LEAKS = ("<class", "<function", "<built-in", "uid=", "root:x:0:0", "__builtins__")
FUZZ_SEED = 8
FUZZ_FILES = 100


def _expected(path: Path) -> tuple[str | None, bool]:
    """(code or None for any, whether the diagnostic is in the template file)."""
    if path.stem in NOT_TEXT:
        return NOT_TEXT[path.stem], False
    found = EXPECT.search(path.read_text(encoding="utf-8"))
    assert found, f"{path} has no '# expect:' line"
    code = found.group(1)
    return (None if code == "any" else code), bool(found.group(2))


def test_every_broken_file_gets_located_diagnostics_and_no_traceback(tmp_path: Path) -> None:
    corpus = sorted(WORKFLOWS.glob("*.yaml"))
    assert len(corpus) >= 35
    cli = Cli(tmp_path)
    report = json.loads(cli("workflow", "validate", "--json", str(WORKFLOWS), code=2).stdout)
    results = {Path(r["path"]).name: r for r in report["files"]}
    assert set(results) == {p.name for p in corpus}
    for path in corpus:
        result = results[path.name]
        code, in_template = _expected(path)
        errors = [d for d in result["diagnostics"] if d["severity"] == "error"]
        assert not result["valid"] and errors, path.name
        for diagnostic in result["diagnostics"]:
            assert diagnostic["line"] >= 1 and diagnostic["column"] >= 1, diagnostic
            assert Path(diagnostic["file"]).is_file(), diagnostic
            text = f"{diagnostic['message']} {diagnostic.get('hint', '')}"
            assert not any(leak in text for leak in LEAKS), diagnostic
        if code is not None:
            matching = [d for d in errors if d["code"] == code]
            assert matching, (path.name, code, errors)
            if in_template:
                assert all(d["file"].endswith(".jinja") for d in matching), matching
                assert Path(matching[0]["file"]).parent.name == path.stem

    # The same corpus for people: one located line per problem on stderr, then the summary.
    plain = cli("workflow", "validate", str(WORKFLOWS), code=2)
    lines = plain.stderr.splitlines()
    assert lines, plain.stderr
    problems = [line for line in lines if not re.match(r"^\d+ files? checked", line)]
    assert len(problems) == sum(len(r["diagnostics"]) for r in results.values())
    for line in problems:
        assert LOCATED.match(line), line
    assert not any(leak in plain.stdout + plain.stderr for leak in LEAKS)


def _mutate(text: bytes, rng: random.Random) -> bytes:
    data = bytearray(text)
    for _ in range(rng.randint(1, 8)):
        where = rng.randrange(len(data))
        action = rng.choice(("flip", "cut", "insert", "delete", "tab"))
        if action == "flip":
            data[where] = rng.randrange(256)
        elif action == "cut":
            del data[where:]
            if not data:
                data = bytearray(b"x")
        elif action == "insert":
            token = rng.choice(
                (b": ", b"- ", b"[", b"{", b"&a ", b"*a", b"!!binary ", b"\n  ", b'"')
            )
            data[where:where] = token
        elif action == "delete":
            del data[where : where + rng.randint(1, 40)]
            if not data:
                data = bytearray(b"x")
        else:
            data[where:where] = b"\t"
    return bytes(data)


def test_fuzzed_files_never_crash_the_cli(tmp_path: Path) -> None:
    rng = random.Random(FUZZ_SEED)
    folder = tmp_path / "workflows"
    folder.mkdir()
    source = DK2020.read_bytes()
    for number in range(FUZZ_FILES):
        if number % 4 == 3:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
        else:
            data = _mutate(source, rng)
        (folder / f"fuzz{number:02d}.yaml").write_bytes(data)
    done = Cli(tmp_path)("workflow", "validate", "--json", str(folder), code=None)
    assert done.returncode in (0, 2), done.stderr
    report = json.loads(done.stdout)
    assert len(report["files"]) == FUZZ_FILES
    for result in report["files"]:
        for diagnostic in result["diagnostics"]:
            assert diagnostic["line"] >= 1 and diagnostic["column"] >= 1, diagnostic
            assert re.fullmatch(r"DF\d{3}", diagnostic["code"]), diagnostic
