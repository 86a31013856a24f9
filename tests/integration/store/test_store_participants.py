"""Participants: the shipped organisations, the CSV format and its checks, the import."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from dk2020_data import DK2020_MUNICIPALITIES
from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.service.participants import import_participants, parse_participants_csv
from dk2020flow.store.errors import ParticipantsError
from dk2020flow.store.port import Contact, Organisation
from dk2020flow.store.repository import SqlStore

NOW = dt.datetime(2024, 1, 1, 8, 0, tzinfo=dt.UTC)
DK2020 = parse_participants_csv(DK2020_MUNICIPALITIES, known=())[0]

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


def test_dk2020s_data_set_is_the_98_municipalities(store: SqlStore) -> None:
    with store.read() as tx:
        organisations = tx.organisations()
        assert tx.find_organisation("751") == Organisation(
            code="751",
            name="Aarhus",
            region="Midtjylland",
            group="pilot",
            kind="municipality",
            country="DK",
            language="da",
            titles={"da": "Aarhus Kommune", "en": "Aarhus Municipality"},
        )
        assert tx.find_organisation("høje-taastrup") is not None
        assert tx.find_organisation("ÆRØ") is not None
        assert tx.find_organisation("Atlantis") is None
    assert len(organisations) == 98
    assert Counter(m.region for m in organisations) == REGIONS
    assert len(DK2020) == 98


def test_organisations_file_of_0x(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "\ufeffcode,name,region,dk2020_group\r\n"
        "101,København,Hovedstaden,pilot\r\n"
        "\r\n"
        '999," Nyby ",Nordjylland,\r\n',
    )
    organisations, contacts = parse_participants_csv(path, known=())
    assert contacts == []
    assert organisations == [
        Organisation(code="101", name="København", region="Hovedstaden", group="pilot"),
        Organisation(code="999", name="Nyby", region="Nordjylland", group=""),
    ]


def test_organisations_of_any_country_with_kind_calendar_language_and_titles(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path,
        "code,name,kind,country,subdivision,region,language,title_en,title_fr\n"
        "BE-LEU,Leuven,city,be,,Flanders,nl,City of Leuven,Ville de Louvain\n"
        "DE-09162,München,city,DE,by,Bayern,de,City of Munich,\n"
        "ACME.7,Acme,company,,,,,,\n",
    )
    organisations, _ = parse_participants_csv(path, known=())
    assert organisations == [
        Organisation(
            code="BE-LEU",
            name="Leuven",
            kind="city",
            country="BE",
            region="Flanders",
            language="nl",
            titles={"en": "City of Leuven", "fr": "Ville de Louvain"},
        ),
        Organisation(
            code="DE-09162",
            name="München",
            kind="city",
            country="DE",
            subdivision="BY",
            region="Bayern",
            language="de",
            titles={"en": "City of Munich"},
        ),
        Organisation(code="ACME.7", name="Acme", kind="company"),
    ]
    assert organisations[0].title("fr") == "Ville de Louvain"
    assert organisations[1].title("de") == "München"


def test_bad_countries_subdivisions_kinds_and_codes_are_reported_by_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "code,name,kind,country,subdivision,language\n"
        "A1,Fine,city,FR,,fr\n"  # 2
        "A2,Nowhere,city,XQ,,\n"  # 3 unknown country
        "A3,Bad Land,city,DE,ZZ,\n"  # 4 unknown subdivision
        "A4,Lost,city,,BY,\n"  # 5 subdivision without country
        "A5,Odd,City Hall,,,\n"  # 6 bad kind
        "a b,Spaced,,,,\n"  # 7 bad code
        "A7,Tongue,,,,klingon\n",  # 8 bad language
    )
    with pytest.raises(ParticipantsError) as error:
        parse_participants_csv(path, known=())
    problems = _problems(error)
    assert sorted(problems) == [3, 4, 5, 6, 7, 8]
    assert "country 'XQ' is not an ISO 3166-1 code" in problems[3]
    assert "subdivision 'ZZ' is not one of DE's" in problems[4]
    assert "subdivision is given without a country" in problems[5]
    assert "kind 'City Hall' is not a kind name" in problems[6]
    assert "code must be 1 to 32 letters" in problems[7]
    assert "language must be a language code" in problems[8]


def test_a_contact_of_an_unknown_organisation_without_a_language_is_one_problem(
    tmp_path: Path,
) -> None:
    # A database without the programme's data set yet: this was a KeyError (exit 70).
    path = _write(tmp_path, "organisation,role,name,email\n751,mayor,Jacob,b@aarhus.example.dk\n")
    with pytest.raises(ParticipantsError) as error:
        parse_participants_csv(path, known=())
    assert list(_problems(error)) == [2]
    assert "unknown organisation '751'" in _problems(error)[2]


def test_a_contact_without_a_language_takes_the_organisations(tmp_path: Path) -> None:
    leuven = Organisation(code="BE-LEU", name="Leuven", language="nl")
    acme = Organisation(code="ACME", name="Acme")
    path = _write(
        tmp_path, "organisation,role,name,email\nBE-LEU,mayor,A,a@leuven.be\nAcme,ceo,B,b@acme.eu\n"
    )
    with pytest.raises(ParticipantsError) as error:
        parse_participants_csv(path, known=[leuven, acme])
    assert _problems(error) == {
        3: "Acme has no language: give the contact's in a language column (da, en, de or fr)"
    }
    path = _write(tmp_path, "organisation,role,name,email\nBE-LEU,mayor,A,a@leuven.be\n")
    assert parse_participants_csv(path, known=[leuven])[1][0].language == "nl"


def test_contacts_file_by_code_or_name_with_semicolons(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "organisation;role;name;email;language\n"
        "751;contact_person;Anne Ørsted;Anne@Aarhus.example.dk;da\n"
        "københavn;mayor;Sophie Hæstorp;mayor@kk.example.dk;EN\n",
    )
    organisations, contacts = parse_participants_csv(path, known=DK2020)
    assert organisations == []
    assert contacts == [
        Contact(
            organisation_code="751",
            role="contact_person",
            name="Anne Ørsted",
            email="Anne@aarhus.example.dk",
            language="da",
        ),
        Contact(
            organisation_code="101",
            role="mayor",
            name="Sophie Hæstorp",
            email="mayor@kk.example.dk",
            language="en",
        ),
    ]


def test_the_language_column_is_optional(tmp_path: Path) -> None:
    path = _write(tmp_path, "organisation,role,name,email\n751,mayor,A B,a@b.dk\n")
    (_, [contact]) = parse_participants_csv(path, known=DK2020)
    assert contact.language == "da"


def test_every_bad_organisation_row_is_reported_by_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "code,name,region,dk2020_group\n"
        "101,København,Hovedstaden,pilot\n"  # 2 fine
        "10 11,Too Long,Hovedstaden,\n"  # 3
        "101,Again,Hovedstaden,\n"  # 4 duplicate code
        "102,KØBENHAVN,Hovedstaden,\n"  # 5 duplicate name
        "103,,Hovedstaden,\n"  # 6 empty name
        "104,Tab\tName,Hovedstaden,\n"  # 7 control character
        '105,"Two\nLines",Hovedstaden,\n'  # 8 (spans two lines)
        "106,Short row\n"  # 10
        "107,Fine,,\n",  # 11 an empty region is no region
    )
    with pytest.raises(ParticipantsError) as error:
        parse_participants_csv(path, known=DK2020)
    problems = _problems(error)
    assert sorted(problems) == [3, 4, 5, 6, 7, 8, 10]
    assert "1 to 32 letters" in problems[3]
    assert "appears twice (also on line 2)" in problems[4]
    assert "'KØBENHAVN' appears twice" in problems[5]
    assert "name is empty" in problems[6]
    assert "control character" in problems[7]
    assert "control character" in problems[8]
    assert "expected 4 fields" in problems[10]
    message = str(error.value)
    assert message.startswith(f"{path}: 7 bad rows, nothing was imported")
    assert (
        "  line 3: code must be 1 to 32 letters, digits, '.', '_' or '-' (e.g. 751 or BE-LEU), got '10 11'"
        in message
    )


def test_every_bad_contact_row_is_reported_by_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "organisation,role,name,email,language\n"
        "751,contact_person,Anne,anne@aarhus.example.dk,da\n"  # 2 fine
        "Atlantis,mayor,Bo,bo@example.dk,da\n"  # 3 unknown organisation
        "751,Contact Person,Bo,bo@example.dk,da\n"  # 4 bad role
        "751,mayor,Bo,not-an-address,da\n"  # 5 bad e-mail
        "751,mayor,Bo,bo@example.dk,xx\n"  # 6 bad language (de, fr … are languages)
        "751,contact_person,Anne,ANNE@aarhus.example.dk,da\n"  # 7 duplicate
        ",mayor,Bo,bo@example.dk,\n"  # 8 empty organisation and language
        "751,mayor,Bo\x07,bo@example.dk,da\n",  # 9 control character
    )
    with pytest.raises(ParticipantsError) as error:
        parse_participants_csv(path, known=DK2020)
    problems = {p.line: p.message for p in error.value.problems}
    assert sorted(problems) == [3, 4, 5, 6, 7, 8, 9]
    assert "unknown organisation 'Atlantis'" in problems[3]
    assert "role 'Contact Person' is not a role name" in problems[4]
    assert "'not-an-address' is not a valid address" in problems[5]
    assert "language must be a language code" in problems[6]
    assert "got 'xx'" in problems[6]
    assert "already a contact_person of Aarhus (line 2)" in problems[7]
    assert [p.message for p in error.value.problems if p.line == 8] == [
        "organisation is empty",
        "language is empty (a language code: da, en, de or fr)",
    ]
    assert "control character" in problems[9]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("code,name,region\n", "has a header but no rows"),
        ("kode,navn\n1,2\n", "unknown header 'kode,navn'"),
        ("code,region\n101,X\n", "line 1: missing column: name"),
        ("code,name,region,colour\n101,X,Y,red\n", "line 1: unknown column: 'colour'"),
        ("organisation,role,name,email,email\n751,a,b,c,d\n", "line 1: repeated column: email"),
        ('code,name,region\n101,"unterminated,Y\n', "not valid CSV"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ParticipantsError, match="nothing was imported") as error:
        parse_participants_csv(path, known=DK2020)
    assert expected in str(error.value)
    assert str(path) in str(error.value)


def test_a_file_that_is_not_utf8_gets_one_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "code,name,region\n825,Læsø,Nordjylland\n", encoding="latin-1")
    with pytest.raises(ParticipantsError) as error:
        parse_participants_csv(path, known=DK2020)
    assert str(error.value) == (
        f'{path}: the file is not UTF-8 text (line 2 has the byte 0xE6): save it as "CSV UTF-8" '
        "and import it again; nothing was imported"
    )


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParticipantsError, match="cannot read the file"):
        parse_participants_csv(tmp_path / "nope.csv", known=())


def test_import_upserts_organisations_and_replaces_their_contacts(
    store: SqlStore, tmp_path: Path
) -> None:
    files = {
        "m.csv": "code,name,region,dk2020_group\n751,Aarhus Kommune,Midtjylland,x\n"
        "999,Nyby,Nordjylland,\n",
        "c1.csv": "organisation,role,name,email,language\nnyby,mayor,A,a@nyby.dk,da\n"
        "751,mayor,B,b@aarhus.dk,en\n751,contact_person,C,c@aarhus.dk,da\n",
        "c2.csv": "organisation,role,name,email\n751,mayor,D,d@aarhus.dk\n",
    }
    for name, text in files.items():
        with store.transaction() as tx:
            import_participants(tx, _write(tmp_path, text, name))

    with store.read() as tx:
        assert len(tx.organisations()) == 99
        # The file has no kind, country, language or title columns: those stay as they were.
        assert tx.find_organisation("751") == Organisation(
            code="751",
            name="Aarhus Kommune",
            region="Midtjylland",
            group="x",
            kind="municipality",
            country="DK",
            language="da",
            titles={"da": "Aarhus Kommune", "en": "Aarhus Municipality"},
        )
        assert tx.find_organisation("999") == Organisation(
            code="999", name="Nyby", region="Nordjylland"
        )
        assert [(c.role, c.name, c.language) for c in tx.contacts("751")] == [
            ("mayor", "D", "da")  # the organisation's language
        ]
        assert [(c.role, c.name) for c in tx.contacts("999")] == [("mayor", "A")]


def _programme_with_data_set(tmp_path: Path, rows: str) -> Path:
    """A copy of the mini workflow whose ``organisations:`` is a file of ``rows``."""
    mini = Path(__file__).resolve().parents[2] / "data" / "mini"
    folder = tmp_path / "programme"
    (folder / "workflows" / "data").mkdir(parents=True)
    (folder / "notifications").symlink_to(mini / "notifications")
    text = (mini / "workflows" / "mini.yaml").read_text(encoding="utf-8")
    text = text.replace("\nstates:", "\norganisations: data/cities.csv\n\nstates:", 1)
    (folder / "workflows" / "mini.yaml").write_text(text, encoding="utf-8")
    (folder / "workflows" / "data" / "cities.csv").write_text(rows, encoding="utf-8")
    return folder / "workflows" / "mini.yaml"


def test_workflow_load_adds_the_organisations_its_data_set_has_and_the_database_lacks(
    store: SqlStore, tmp_path: Path
) -> None:
    path = _programme_with_data_set(
        tmp_path,
        "code,name,kind,country\nBE-LEU,Leuven,city,BE\nDK-AAR,Aarhus,city,DK\n"
        "751,Someone Else,city,DK\n",
    )
    service = Service(store, clock=ManualClock(NOW))
    service.load_workflow(path)
    with store.read() as tx:
        assert len(tx.organisations()) == 99  # Leuven; Aarhus known by name, 751 by code
        assert tx.find_organisation("BE-LEU") == Organisation(
            code="BE-LEU", name="Leuven", kind="city", country="BE"
        )
        aarhus = tx.find_organisation("Aarhus")
        assert aarhus is not None and aarhus.code == "751" and aarhus.kind == "municipality"
        assert [d.name for d in tx.definitions()] == ["mini"]


def test_a_bad_data_set_stores_neither_it_nor_the_definition(
    store: SqlStore, tmp_path: Path
) -> None:
    path = _programme_with_data_set(tmp_path, "code,name,country\nBE-LEU,Leuven,BE\nX,Y,ZZ\n")
    with pytest.raises(ParticipantsError, match=r"(?s)cities.csv: 1 bad row.*line 3: country 'ZZ'"):
        Service(store, clock=ManualClock(NOW)).load_workflow(path)
    with store.read() as tx:
        assert len(tx.organisations()) == 98
        assert tx.definitions() == []


def _statements(store: SqlStore) -> list[str]:
    """The SQL statements the store's engine runs from now on."""
    from sqlalchemy import event

    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    return seen


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("aarhus", "751"),
        ("AARHUS", "751"),
        ("ÆRØ", "492"),
        ("Ærø", "492"),
        ("ærø", "492"),
        ("københavn", "101"),
        ("KØBENHAVN", "101"),
        ("lyngby-taarbæk", "173"),
        ("HØJE-TAASTRUP", "169"),
        ("Frankfurt AM main", "DE-FRA"),
        ("751", "751"),
    ],
)
def test_find_organisation_by_name_is_one_indexed_query(
    store: SqlStore, tmp_path: Path, typed: str, code: str
) -> None:
    """By name, case-insensitively (Æ, Ø, Å too) in one statement on the primary key and the
    unique index on ``name``, not a read of every organisation (#18)."""
    rows = "code,name,country\nDE-FRA,Frankfurt am Main,DE\n"
    with store.transaction() as tx:
        import_participants(tx, _write(tmp_path, rows))
    with store.read() as tx:
        statements = _statements(store)
        found = tx.find_organisation(typed)
    assert found is not None and found.code == code
    assert len(statements) == 1, statements
    assert "WHERE organisations.code = " in statements[0]
    assert "organisations.name IN (" in statements[0]


def test_a_name_in_no_likely_spelling_is_still_found(store: SqlStore, tmp_path: Path) -> None:
    """ "mcallen" is no spelling of "McAllen" the index is asked for: the names are then
    folded in Python (a second statement reading codes and names), and a miss is None."""
    with store.transaction() as tx:
        import_participants(tx, _write(tmp_path, "code,name\nUS-MCA,McAllen\n"))
    with store.read() as tx:
        found = tx.find_organisation("mcallen")
        assert found is not None and found.code == "US-MCA"
        assert tx.find_organisation("Atlantis") is None
        assert tx.find_organisation("  ") is None


def test_the_index_on_name_answers_the_lookup(store: SqlStore) -> None:
    """The plan of the statement the lookup runs uses the primary key and the unique index
    on ``name``, no scan of the table (PostgreSQL prefers a scan of 98 rows: asked not to,
    it still must not need one)."""
    from sqlalchemy import event

    seen: list[tuple[str, object]] = []

    def record(conn: object, cursor: object, statement: str, params: object, *args: object) -> None:
        seen.append((statement, params))

    with store.read() as tx:
        event.listen(store.engine, "before_cursor_execute", record)
        assert tx.find_organisation("ærø") is not None
        event.remove(store.engine, "before_cursor_execute", record)
    ((statement, params),) = seen
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if store.dialect == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "SCAN" not in plan and "sqlite_autoindex_organisations" in plan, plan
        else:
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN " + statement, params)
            plan = " ".join(str(row[0]) for row in cursor.fetchall())
            assert "Seq Scan" not in plan and "Index" in plan, plan
    finally:
        raw.close()
