"""The loader: refusing bad bytes and bad YAML with located diagnostics, and what it returns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from definition_helpers import REPO, TEMPLATES

from dk2020flow.definition import (
    DefinitionError,
    Diagnostic,
    LoadedWorkflow,
    load_workflow,
    load_workflow_text,
)
from dk2020flow.definition.diagnostics import CODES, Severity
from dk2020flow.errors import Dk2020flowError

MINI = """workflow: mini
version: "1"
title: Mini
roles:
  clerk: {receives_mail: true}
states:
  open:
    initial: true
    on_entry:
      mail: {template: hello, to: clerk}
  done: {terminal: true}
transitions:
  - {trigger: finish, from: open, to: done, roles: clerk}
"""


def problems(text: str | bytes, tmp_path: Path, **kwargs: object) -> list[tuple[str, int, int]]:
    path = tmp_path / "wf.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(DefinitionError) as caught:
        load_workflow(path, **kwargs)  # type: ignore[arg-type]
    for diagnostic in caught.value.diagnostics:
        place = f"{diagnostic.file}:{diagnostic.line}:{diagnostic.column}: {diagnostic.code} "
        assert str(diagnostic).startswith(place)
        assert diagnostic.file == str(path) or diagnostic.file.endswith(".jinja")
    return [(d.code, d.line, d.column) for d in caught.value.diagnostics]


def test_missing_file_and_folder_are_df001(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.yaml", tmp_path):
        with pytest.raises(DefinitionError) as caught:
            load_workflow(path)
        assert [(d.code, d.line, d.column) for d in caught.value.diagnostics] == [("DF001", 1, 1)]


def test_too_large_is_df002(tmp_path: Path) -> None:
    big = MINI + "# padding\n" * 300_000
    assert problems(big, tmp_path) == [("DF002", 1, 1)]


def test_df002_shows_the_file_s_real_size(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_bytes(MINI.encode() + b"#" * (5_452_595 - len(MINI)))  # 5.2 MB
    with pytest.raises(DefinitionError) as caught:
        load_workflow(path)
    (diagnostic,) = caught.value.diagnostics
    assert "the file is 5.2 MB" in diagnostic.message, diagnostic.message


def test_binary_and_non_utf8_are_df003_at_the_byte(tmp_path: Path) -> None:
    assert problems(b"workflow: mini\nversion: \x00\x01", tmp_path) == [("DF003", 2, 10)]
    assert problems(b"workflow: mini\ntitle: K\xf8benhavn\n", tmp_path) == [("DF003", 2, 9)]
    assert problems("workflow: a\x07\n", tmp_path) == [("DF003", 1, 12)]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINI.encode())
    assert load_workflow(path, templates=TEMPLATES).workflow.workflow == "mini"


@pytest.mark.parametrize("text", ["", "   \n\n", "# just a comment\n", "---\n"])
def test_empty_is_df004(text: str, tmp_path: Path) -> None:
    assert problems(text, tmp_path) == [("DF004", 1, 1)]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("workflow: [\n", (2, 1)),
        ("workflow: x\n\tversion: 1\n", (2, 1)),
        ("workflow: x\ntitle: a: b\n", (2, 9)),
        ("a: 1\n---\nb: 2\n", (2, 1)),
        ('title: "open\n', (2, 1)),
    ],
)
def test_syntax_errors_are_df005_where_the_parser_stopped(
    text: str, where: tuple[int, int], tmp_path: Path
) -> None:
    assert problems(text, tmp_path) == [("DF005", *where)]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("+_", (1, 1)),  # found by test_random_bytes: ruamel.yaml raised IndexError
        ("workflow: w\nversion: 1_000\ntitle: {da: x, en: -__}\n", (3, 20)),
        ("workflow: w\ntitle: 0x_\n", (2, 8)),
        ("workflow: w\ntitle: ._\n", (2, 8)),  # a ValueError there
    ],
)
def test_a_value_read_as_a_number_that_is_not_one_is_df005_at_it(
    text: str, where: tuple[int, int], tmp_path: Path
) -> None:
    assert problems(text, tmp_path) == [("DF005", *where)]


def test_duplicate_key_is_df006_at_the_second(tmp_path: Path) -> None:
    text = MINI.replace("  done: {terminal: true}", "  done: {terminal: true}\n  open: {}")
    assert problems(text, tmp_path) == [("DF006", 12, 3)]


def test_alias_bomb_and_deep_nesting_are_df007(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for index in range(8):
        prev, name = chr(97 + index), chr(98 + index)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    assert [p[0] for p in problems("\n".join(lines) + "\n", tmp_path)] == ["DF007"]
    flow = "workflow: " + "[" * 20_000 + "]" * 20_000 + "\n"
    assert problems(flow, tmp_path) == [("DF007", 1, 75)]  # the 65th bracket
    block = "".join(" " * i + f"k{i}:\n" for i in range(1200)) + " " * 1200 + "v: 1\n"
    assert [code for code, _, _ in problems(block, tmp_path)] == ["DF007"]
    quoted = 'title: "' + "[" * 100 + '"\n'
    assert "DF007" not in {code for code, _, _ in problems(quoted, tmp_path)}


@pytest.mark.parametrize(
    ("alias", "where"),
    [
        ("title: &t {da: *t}", (3, 16)),
        ("title: &t [*t]", (3, 12)),
        ("title: &t {da: {en: [x, *t]}}", (3, 25)),
    ],
)
def test_an_alias_inside_the_node_it_names_is_one_df007(
    alias: str, where: tuple[int, int], tmp_path: Path
) -> None:
    assert problems(MINI.replace("title: Mini", alias), tmp_path) == [("DF007", *where)]


def test_an_alias_after_its_node_is_fine(tmp_path: Path) -> None:
    text = MINI.replace("title: Mini", "title: &t Mini\ndescription: *t")
    loaded = load_workflow(_write(tmp_path, text), templates=TEMPLATES)
    assert loaded.workflow.description == "Mini"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "where"),
    [("- a\n- b\n", (1, 1)), ("just text\n", (1, 1)), ("42\n", (1, 1))],
)
def test_a_document_that_is_not_a_mapping_is_df008(
    text: str, where: tuple[int, int], tmp_path: Path
) -> None:
    assert problems(text, tmp_path) == [("DF008", *where)]


def test_tags_and_complex_keys_are_df009(tmp_path: Path) -> None:
    text = "workflow: !!binary aGVsbG8=\n? [a, b]\n: 1\nversion: !custom 1\n"
    assert problems(text, tmp_path) == [("DF009", 1, 11), ("DF009", 2, 3), ("DF009", 4, 10)]


def test_a_template_that_does_not_render_is_df061_in_the_template_file(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "hello.da.jinja").write_text(TEMPLATES["hello.da.jinja"])
    (folder / "hello.en.jinja").write_text(
        "{% block subject %}Hi{% endblock %}\n"
        "{% block text %}\n{{ organisation.nickname }}\n{% endblock %}\n"
        "{% block html %}<p>Hi</p>{% endblock %}\n"
    )
    found = problems(MINI, tmp_path, templates=folder)
    assert found == [("DF061", 3, 1)]
    with pytest.raises(DefinitionError) as caught:
        load_workflow(tmp_path / "wf.yaml", templates=folder)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.file == str(folder / "hello.en.jinja")
    assert "nickname" in diagnostic.message


def test_a_template_that_is_not_utf8_is_df062(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "hello.da.jinja").write_text(TEMPLATES["hello.da.jinja"])
    (folder / "hello.en.jinja").write_bytes(b"{% block subject %}K\xf8ge{% endblock %}")
    found = problems(MINI, tmp_path, templates=folder)
    assert found == [("DF062", 1, 1)]  # one mistake: no DF060 for the file that is there


@pytest.mark.parametrize(
    "content", [b"\x00\x01binary", b"{# big #}" + b"x" * (300 * 1024)], ids=["binary", "oversized"]
)
def test_a_binary_or_oversized_template_is_only_df062(content: bytes, tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "hello.da.jinja").write_text(TEMPLATES["hello.da.jinja"])
    (folder / "hello.en.jinja").write_bytes(content)
    with pytest.raises(DefinitionError) as caught:
        load_workflow(_write(tmp_path, MINI), templates=folder)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "DF062" and diagnostic.file == str(folder / "hello.en.jinja")


def test_a_template_using_an_unreadable_file_adds_no_render_error(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "hello.da.jinja").write_text(TEMPLATES["hello.da.jinja"])
    (folder / "hello.en.jinja").write_text(
        '{% import "_parts.en.jinja" as parts %}' + TEMPLATES["hello.en.jinja"]
    )
    (folder / "_parts.en.jinja").write_bytes(b"\x00binary")
    with pytest.raises(DefinitionError) as caught:
        load_workflow(_write(tmp_path, MINI), templates=folder)
    assert [(d.code, d.file) for d in caught.value.diagnostics] == [
        ("DF062", str(folder / "_parts.en.jinja"))
    ]


def test_an_unknown_timezone_is_one_df050_and_no_template_errors(tmp_path: Path) -> None:
    text = MINI.replace('version: "1"', 'version: "1"\ntimezone: Europe/Copenhagn')
    assert problems(text, tmp_path, templates=TEMPLATES) == [("DF050", 3, 11)]


def test_the_unknown_timezone_hint_gives_examples_of_no_one_country(tmp_path: Path) -> None:
    text = MINI.replace('version: "1"', 'version: "1"\ntimezone: Europe/Copenhagn')
    with pytest.raises(DefinitionError) as caught:
        load_workflow(_write(tmp_path, text), templates=TEMPLATES)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.hint == (
        "use a name from the IANA time zone database, such as Europe/Brussels or America/Toronto"
    )


def test_default_template_folder_is_beside_the_workflows_folder(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "notifications" / "mini").mkdir(parents=True)
    for name, text in TEMPLATES.items():
        (tmp_path / "notifications" / "mini" / name).write_text(text)
    path = tmp_path / "workflows" / "mini.yaml"
    path.write_text(MINI)
    loaded = load_workflow(path)
    assert loaded.template_dir == tmp_path / "notifications" / "mini"
    assert dict(loaded.templates) == TEMPLATES


@pytest.mark.parametrize("where", ["programme", "programme/workflows"])
def test_the_template_folder_does_not_depend_on_how_the_path_is_spelled(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # <folder of the file>/../notifications/<name>/, for a file in the current folder too.
    folder = tmp_path / where
    folder.mkdir(parents=True)
    templates = folder.parent / "notifications" / "mini"
    templates.mkdir(parents=True)
    for name, text in TEMPLATES.items():
        (templates / name).write_text(text)
    (folder / "mini.yaml").write_text(MINI)
    spellings = {
        folder: [
            "mini.yaml",
            "./mini.yaml",
            str(folder / "mini.yaml"),
            "../" + folder.name + "/mini.yaml",
        ],
        tmp_path: [f"{where}/mini.yaml", str(folder / "mini.yaml")],
        templates: [os.path.relpath(folder / "mini.yaml", templates)],
    }
    for cwd, paths in spellings.items():
        monkeypatch.chdir(cwd)
        for spelled in paths:
            loaded = load_workflow(Path(spelled))
            assert loaded.template_dir == templates, (cwd, spelled)
            assert dict(loaded.templates) == TEMPLATES


def test_schema_errors_are_all_reported_at_their_nodes(tmp_path: Path) -> None:
    text = MINI.replace('version: "1"', "version: 1.5").replace(
        "  done: {terminal: true}", "  done: {terminal: true, colour: red}"
    )
    assert problems(text, tmp_path, templates=TEMPLATES) == [("DF012", 2, 10), ("DF010", 11, 26)]


def test_a_shape_error_does_not_hide_the_other_problems(tmp_path: Path) -> None:
    text = (
        MINI.replace('version: "1"', "version: 1.5")
        .replace("to: done, roles: clerk", "to: dnoe, roles: [clerk, boss]")
        .replace("mail: {template: hello, to: clerk}", "mail: {template: hullo, to: clerk}")
    )
    assert problems(text, tmp_path, templates=TEMPLATES) == [
        ("DF012", 2, 10),  # version: a number
        ("DF030", 7, 3),  # open: its only transition goes to an unknown state
        ("DF060", 10, 24),  # hullo (da)
        ("DF060", 10, 24),  # hullo (en)
        ("DF029", 11, 3),  # done: unreachable, as the only way in names `dnoe`
        ("DF021", 13, 39),  # dnoe
        ("DF022", 13, 60),  # boss
    ]


def test_what_a_shape_error_cuts_out_is_not_blamed_again(tmp_path: Path) -> None:
    # The state `done` has a bad value: it is not "unknown" where a transition names it,
    # and with the graph unknown no state is called unreachable.
    text = MINI.replace("  done: {terminal: true}", "  done: {terminal: maybe}")
    assert problems(text, tmp_path, templates=TEMPLATES) == [("DF012", 11, 20)]
    # A role with a bad name is a DF012 where it is defined and where it is used, never
    # "unknown"; a bad workflow name does not send the template check to a folder named
    # after a placeholder (no DF060).
    text = MINI.replace("clerk", "Clerk").replace("workflow: mini", "workflow: Mini")
    found = problems(text, tmp_path)
    assert found == [("DF012", 1, 11), ("DF012", 5, 3), ("DF012", 10, 35), ("DF012", 13, 52)]


def test_union_alternatives_are_merged_into_one_diagnostic(tmp_path: Path) -> None:
    text = MINI.replace("title: Mini", "title: [Mini]")
    found = problems(text, tmp_path, templates=TEMPLATES)
    assert found == [("DF012", 3, 8)]


def test_text_input_gives_the_identical_workflow_and_hash() -> None:
    path = REPO / "workflows" / "status_reports.yaml"
    from_file = load_workflow(path)
    from_text = load_workflow_text(
        from_file.source_text, str(path), templates=dict(from_file.templates)
    )
    assert from_text.workflow == from_file.workflow
    assert from_text.content_hash == from_file.content_hash
    assert load_workflow_text(from_file.source_text, "stored").workflow == from_file.workflow


def test_content_hash_covers_the_templates() -> None:
    first = load_workflow_text(MINI, "a.yaml", templates=TEMPLATES)
    changed = dict(TEMPLATES, **{"hello.en.jinja": TEMPLATES["hello.en.jinja"] + " "})
    second = load_workflow_text(MINI, "a.yaml", templates=changed)
    assert len(first.content_hash) == 64
    assert first.content_hash != second.content_hash
    assert first.content_hash != load_workflow_text(MINI + "\n", "a.yaml").content_hash


def test_loaded_workflow_is_frozen() -> None:
    loaded = load_workflow_text(MINI, "a.yaml", templates=TEMPLATES)
    assert isinstance(loaded, LoadedWorkflow)
    with pytest.raises(AttributeError):
        loaded.content_hash = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        loaded.templates["x"] = "y"  # type: ignore[index]


def test_warnings_do_not_stop_loading_but_are_kept() -> None:
    text = MINI.replace("roles: clerk}", "}")
    loaded = load_workflow_text(text, "a.yaml", templates=TEMPLATES)
    assert [(d.code, d.severity) for d in loaded.warnings] == [("DF033", Severity.WARNING)]


def test_definition_error_exits_2_as_invalid_input() -> None:
    assert DefinitionError([]).exit_code == 2


def test_definition_error_is_a_dk2020flow_error_naming_the_first_problem() -> None:
    with pytest.raises(Dk2020flowError) as caught:
        load_workflow_text("workflow: [", "broken.yaml")
    assert str(caught.value).startswith("broken.yaml:1:12: DF005 ")


def test_diagnostic_format_and_codes() -> None:
    diagnostic = Diagnostic(
        file="w.yaml", line=3, column=7, code="DF021", message="unknown state `x`", hint="fix it"
    )
    assert str(diagnostic) == "w.yaml:3:7: DF021 unknown state `x` (hint: fix it)"
    assert diagnostic.to_json()["title"] == CODES["DF021"]
    with pytest.raises(ValueError, match="unknown diagnostic code"):
        Diagnostic(file="w", line=1, column=1, code="DF999", message="m")
