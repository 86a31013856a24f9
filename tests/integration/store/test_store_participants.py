"""Participants: the shipped municipalities, the CSV format and its checks, the import."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dk2020flow.service.participants import parse_participants_csv
from dk2020flow.store.errors import ParticipantsError
from dk2020flow.store.participants import default_municipalities, seed_default_municipalities
from dk2020flow.store.port import Contact, Municipality
from dk2020flow.store.repository import SqlStore

REGIONS = {
    "Hovedstaden": 29,
    "Midtjylland": 19,
    "Nordjylland": 11,
    "Sjælland": 17,
    "Syddanmark": 22,
}


def _write(
    tmp_path: Path, text: str, name: str = "participants.csv", encoding: str = "utf-8"
) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _problems(error: pytest.ExceptionInfo[ParticipantsError]) -> dict[int, str]:
    return {p.line: p.message for p in error.value.problems}


def test_a_fresh_database_knows_the_98_municipalities(store: SqlStore) -> None:
    with store.read() as tx:
        municipalities = tx.municipalities()
        assert tx.find_municipality("751") == Municipality(
            code="751", name="Aarhus", region="Midtjylland", group="pilot"
        )
        assert tx.find_municipality("høje-taastrup") is not None
        assert tx.find_municipality("ÆRØ") is not None
        assert tx.find_municipality("Atlantis") is None
    assert len(municipalities) == 98
    assert Counter(m.region for m in municipalities) == REGIONS
    assert len(default_municipalities()) == 98


def test_seeding_adds_nothing_to_a_database_that_has_municipalities(store: SqlStore) -> None:
    with store.transaction() as tx:
        assert seed_default_municipalities(tx) == 0


def test_municipalities_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "\ufeffcode,name,region,dk2020_group\r\n"
        "101,København,Hovedstaden,pilot\r\n"
        "\r\n"
        '999," Nyby ",Nordjylland,\r\n',
    )
    municipalities, contacts = parse_participants_csv(path)
    assert contacts == []
    assert municipalities == [
        Municipality(code="101", name="København", region="Hovedstaden", group="pilot"),
        Municipality(code="999", name="Nyby", region="Nordjylland", group=""),
    ]


def test_contacts_file_by_code_or_name_with_semicolons(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "municipality;role;name;email;language\n"
        "751;contact_person;Anne Ørsted;Anne@Aarhus.example.dk;da\n"
        "københavn;mayor;Sophie Hæstorp;mayor@kk.example.dk;EN\n",
    )
    municipalities, contacts = parse_participants_csv(path)
    assert municipalities == []
    assert contacts == [
        Contact(
            municipality_code="751",
            role="contact_person",
            name="Anne Ørsted",
            email="Anne@aarhus.example.dk",
            language="da",
        ),
        Contact(
            municipality_code="101",
            role="mayor",
            name="Sophie Hæstorp",
            email="mayor@kk.example.dk",
            language="en",
        ),
    ]


def test_the_language_column_is_optional(tmp_path: Path) -> None:
    path = _write(tmp_path, "municipality,role,name,email\n751,mayor,A B,a@b.dk\n")
    (_, [contact]) = parse_participants_csv(path)
    assert contact.language == "da"


def test_every_bad_municipality_row_is_reported_by_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "code,name,region,dk2020_group\n"
        "101,København,Hovedstaden,pilot\n"  # 2 fine
        "1011,Too Long,Hovedstaden,\n"  # 3
        "101,Again,Hovedstaden,\n"  # 4 duplicate code
        "102,KØBENHAVN,Hovedstaden,\n"  # 5 duplicate name
        "103,,Hovedstaden,\n"  # 6 empty name
        "104,Tab\tName,Hovedstaden,\n"  # 7 control character
        '105,"Two\nLines",Hovedstaden,\n'  # 8 (spans two lines)
        "106,Short row\n"  # 10
        "107,Fine,,\n",  # 11 empty region
    )
    with pytest.raises(ParticipantsError) as error:
        parse_participants_csv(path)
    problems = _problems(error)
    assert sorted(problems) == [3, 4, 5, 6, 7, 8, 10, 11]
    assert "3 digits" in problems[3]
    assert "appears twice (also on line 2)" in problems[4]
    assert "'KØBENHAVN' appears twice" in problems[5]
    assert "name is empty" in problems[6]
    assert "control character" in problems[7]
    assert "control character" in problems[8]
    assert "expected 4 fields" in problems[10]
    assert "region is empty" in problems[11]
    message = str(error.value)
    assert message.startswith(f"{path}: 8 bad rows, nothing was imported")
    assert "  line 3: code must be 3 digits (e.g. 101), got '1011'" in message


def test_every_bad_contact_row_is_reported_by_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "municipality,role,name,email,language\n"
        "751,contact_person,Anne,anne@aarhus.example.dk,da\n"  # 2 fine
        "Atlantis,mayor,Bo,bo@example.dk,da\n"  # 3 unknown municipality
        "751,Contact Person,Bo,bo@example.dk,da\n"  # 4 bad role
        "751,mayor,Bo,not-an-address,da\n"  # 5 bad e-mail
        "751,mayor,Bo,bo@example.dk,xx\n"  # 6 bad language (de, fr … are languages)
        "751,contact_person,Anne,ANNE@aarhus.example.dk,da\n"  # 7 duplicate
        ",mayor,Bo,bo@example.dk,\n"  # 8 empty municipality and language
        "751,mayor,Bo\x07,bo@example.dk,da\n",  # 9 control character
    )
    with pytest.raises(ParticipantsError) as error:
        parse_participants_csv(path)
    problems = {p.line: p.message for p in error.value.problems}
    assert sorted(problems) == [3, 4, 5, 6, 7, 8, 9]
    assert "unknown municipality 'Atlantis'" in problems[3]
    assert "role 'Contact Person' is not a role name" in problems[4]
    assert "'not-an-address' is not a valid address" in problems[5]
    assert "language must be a language code" in problems[6]
    assert "got 'xx'" in problems[6]
    assert "already a contact_person of Aarhus (line 2)" in problems[7]
    assert [p.message for p in error.value.problems if p.line == 8] == [
        "municipality is empty",
        "language is empty (a language code: da, en, de or fr)",
    ]
    assert "control character" in problems[9]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("code,name,region\n", "has a header but no rows"),
        ("kode,navn\n1,2\n", "unknown header 'kode,navn'"),
        ("code,name\n101,X\n", "line 1: missing column: region"),
        ("code,name,region,colour\n101,X,Y,red\n", "line 1: unknown column: 'colour'"),
        ("municipality,role,name,email,email\n751,a,b,c,d\n", "line 1: repeated column: email"),
        ('code,name,region\n101,"unterminated,Y\n', "not valid CSV"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ParticipantsError, match="nothing was imported") as error:
        parse_participants_csv(path)
    assert expected in str(error.value)
    assert str(path) in str(error.value)


def test_a_file_that_is_not_utf8_gets_one_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "code,name,region\n825,Læsø,Nordjylland\n", encoding="latin-1")
    with pytest.raises(ParticipantsError) as error:
        parse_participants_csv(path)
    assert str(error.value) == (
        f'{path}: the file is not UTF-8 text (line 2 has the byte 0xE6): save it as "CSV UTF-8" '
        "and import it again; nothing was imported"
    )


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParticipantsError, match="cannot read the file"):
        parse_participants_csv(tmp_path / "nope.csv")


def test_import_upserts_municipalities_and_replaces_their_contacts(
    store: SqlStore, tmp_path: Path
) -> None:
    municipalities, _ = parse_participants_csv(
        _write(
            tmp_path,
            "code,name,region,dk2020_group\n751,Aarhus Kommune,Midtjylland,x\n"
            "999,Nyby,Nordjylland,\n",
            "m.csv",
        )
    )
    with store.transaction() as tx:
        tx.replace_participants(municipalities, [])
        known = tx.municipalities()
    _, contacts = parse_participants_csv(
        _write(
            tmp_path,
            "municipality,role,name,email\nnyby,mayor,A,a@nyby.dk\n"
            "751,mayor,B,b@aarhus.dk\n751,contact_person,C,c@aarhus.dk\n",
            "c1.csv",
        ),
        known=known,
    )
    with store.transaction() as tx:
        tx.replace_participants([], contacts)
    _, again = parse_participants_csv(
        _write(
            tmp_path,
            "municipality,role,name,email\n751,mayor,D,d@aarhus.dk\n",
            "c2.csv",
        ),
        known=known,
    )
    with store.transaction() as tx:
        tx.replace_participants([], again)

    with store.read() as tx:
        assert len(tx.municipalities()) == 99
        assert tx.find_municipality("751") == Municipality(
            code="751", name="Aarhus Kommune", region="Midtjylland", group="x"
        )
        assert [(c.role, c.name) for c in tx.contacts("751")] == [("mayor", "D")]
        assert [(c.role, c.name) for c in tx.contacts("999")] == [("mayor", "A")]
