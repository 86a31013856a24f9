"""The cases table over HTTP: the filter in the URL, a bad parameter, sorting and pages,
columns, the search with æøå, the CSV export and saved views (own and shared by role)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from dk2020flow.service.console import CaseQuery
from dk2020flow.store.port import CaseFilter

from .conftest import NOW, ROUND2_SYDDANMARK, post_form, web_service

Signed = Callable[..., TestClient]


def row_names(html: str) -> list[str]:
    """The organisations of the table's rows, in order."""
    return re.findall(r'<th scope="row"><a href="/cases/\d+">([^<]+)</a></th>', html)


def test_the_filter_lives_in_the_url(client_as: Signed) -> None:
    client = client_as("secretariat")
    page = client.get("/cases?round=round2&region=Syddanmark")
    assert page.status_code == 200
    assert row_names(page.text) == list(ROUND2_SYDDANMARK)
    assert "3 sager passer til filteret" in page.text
    # the form shows the filter it came from, and every link keeps it
    assert '<option value="round2" selected>Runde 2</option>' in page.text
    assert '<option value="Syddanmark" selected>Syddanmark</option>' in page.text
    assert "/cases.csv?round=round2&amp;region=Syddanmark" in page.text
    assert "/cases?round=round2&amp;region=Syddanmark&amp;sort=region" in page.text


def test_late_filter_matches_late_deadlines(client_as: Signed) -> None:
    client = client_as("follow_up")
    service = web_service(client)
    expected = sorted(d.case.organisation_name for d in service.late_deadlines(NOW, "dk2020"))
    assert expected  # the round 2 cases missed their application deadline
    page = client.get("/cases?late=1&size=100")
    assert sorted(row_names(page.text)) == expected
    assert page.text.count("(for sent)") == len(expected)
    not_late = client.get("/cases?late=0&size=100")
    assert not set(row_names(not_late.text)) & set(expected)
    assert len(row_names(not_late.text)) == 98 - len(expected)


def test_a_bad_parameter_says_which_and_shows_nothing_else(client_as: Signed) -> None:
    client = client_as("secretariat")
    for url, param in (
        ("/cases?state=nowhere", "state"),
        ("/cases?round=round9", "round"),
        ("/cases?region=Atlantis", "region"),
        ("/cases?late=maybe", "late"),
        ("/cases?sort=colour", "sort"),
        ("/cases?size=30", "size"),
        ("/cases?page=0", "page"),
        ("/cases?col=password", "col"),
        ("/cases.csv?state=nowhere", "state"),
    ):
        page = client.get(url)
        assert page.status_code == 400, url
        assert f"ugyldig værdi for {param}" in page.text, url
        assert 'id="cases-table"' not in page.text, url
        assert "Traceback" not in page.text
    page = client.get("/cases?state=nowhere")
    assert "Mulige værdier: invited, declined" in page.text


def test_sorting_and_pages(client_as: Signed) -> None:
    client = client_as("secretariat")
    first = client.get("/cases")
    names = row_names(first.text)
    assert len(names) == 25 and names == sorted(names)
    assert 'aria-sort="ascending"' in first.text
    assert 'aria-current="page"' in first.text
    assert "Side 4" in first.text  # 98 cases, 25 a page
    last = client.get("/cases?page=4")
    assert len(row_names(last.text)) == 98 - 75
    beyond = client.get("/cases?page=9")  # past the end: the last page
    assert row_names(beyond.text) == row_names(last.text)
    reverse = client.get("/cases?sort=-organisation&size=100")
    assert row_names(reverse.text) == sorted(row_names(reverse.text), reverse=True)
    assert 'aria-sort="descending"' in reverse.text
    since = client.get("/cases?sort=-since&size=25")
    # the round 2 decisions are the latest entries, then round 1's
    assert set(row_names(since.text)[:3]) == set(ROUND2_SYDDANMARK)


def test_htmx_gets_the_results_part_only(client_as: Signed) -> None:
    client = client_as("secretariat")
    part = client.get("/cases?round=round2", headers={"HX-Request": "true"})
    assert part.status_code == 200
    assert "<html" not in part.text and "<h1>" not in part.text
    assert 'id="cases-table"' in part.text
    assert 'hx-push-url="true"' in part.text
    # a history restore gets the whole page
    whole = client.get(
        "/cases?round=round2",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in whole.text


def test_columns_for_the_workflows_fields(client_as: Signed) -> None:
    client = client_as("secretariat")
    page = client.get("/cases?round=round2&col=contact_person_name&col=cohort")
    assert '<th scope="col">Kontaktperson</th>' in page.text
    assert "<td>Kontakt Odense</td>" in page.text
    client.cookies.set("dk2020flow_lang", "en")
    english = client.get("/cases?round=round2&col=contact_person_name")
    assert '<th scope="col">Contact person</th>' in english.text
    assert "Participation decided" in english.text


def test_search_with_danish_letters(client_as: Signed) -> None:
    client = client_as("secretariat")
    assert row_names(client.get("/cases?q=ærø").text) == ["Ærø"]
    assert row_names(client.get("/cases?q=ÆRØ").text) == ["Ærø"]
    assert row_names(client.get("/cases?q=HØJE").text) == ["Høje-Taastrup"]
    assert row_names(client.get("/cases?q=%25").text) == []


def test_csv_of_every_matching_row(client_as: Signed) -> None:
    client = client_as("read_only")
    response = client.get("/cases.csv?region=Syddanmark&col=contact_person_name")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Sag", "Kommune", "Kode"] and rows[0][-1] == "Kontaktperson"
    names = [r[1] for r in rows[1:]]
    service = web_service(client)
    expected = sorted(
        c.organisation_name
        for c in service.cases(CaseFilter(workflow="dk2020", region="Syddanmark"))
    )
    assert names == expected  # all of them, not one page
    assert "Ærø" in names
    odense = next(r for r in rows if r[1] == "Odense")
    assert odense[4] == "Runde 2" and odense[-1] == "Kontakt Odense"
    everything = client.get("/cases.csv?size=25")
    assert len(list(csv.reader(io.StringIO(everything.text)))) == 99  # header + 98


def view_names(html: str) -> list[str]:
    return re.findall(r'<li>\s*<a href="/cases\?[^"]*">([^<]+)</a>', html)


def test_saved_views_for_oneself_and_shared_by_role(client_as: Signed) -> None:
    anne = client_as("secretariat", "follow_up", email="anne@staff.example.dk")
    saved = post_form(anne, "/cases/views", {"name": "Mine sene", "query": "late=1&round=round2"})
    assert saved.status_code == 303
    assert saved.headers["location"] == "/cases?late=1&round=round2"
    post_form(
        anne,
        "/cases/views",
        {
            "name": "Runde 2 i Syd",
            "query": "round=round2&region=Syddanmark",
            "shared_role": "follow_up",
        },
    )
    page = anne.get("/cases")
    assert view_names(page.text) == ["Mine sene", "Runde 2 i Syd"]
    assert 'href="/cases?round=round2&amp;late=1"' in page.text  # stored in its own order

    bo = client_as("follow_up", email="bo@staff.example.dk")
    seen = bo.get("/cases")
    assert view_names(seen.text) == ["Runde 2 i Syd"]
    assert "delt af" in seen.text
    opened = bo.get("/cases?round=round2&region=Syddanmark")
    assert row_names(opened.text) == list(ROUND2_SYDDANMARK)

    carl = client_as("secretariat", email="carl@staff.example.dk")
    assert view_names(carl.get("/cases").text) == []

    # sharing with a role one does not hold is refused; a bad query too
    bo = client_as("follow_up", email="bo@staff.example.dk")
    bo_share = post_form(
        bo, "/cases/views", {"name": "X", "query": "", "shared_role": "secretariat"}
    )
    assert bo_share.status_code == 409
    bad = post_form(bo, "/cases/views", {"name": "X", "query": "state=nowhere"})
    assert bad.status_code == 400
    nameless = post_form(bo, "/cases/views", {"name": "  ", "query": ""})
    assert nameless.status_code == 409

    service = web_service(bo)
    users = {u.email: u for u in service.accounts.list_users()}
    shared = service.console.views(users["anne@staff.example.dk"].id, ["secretariat"])
    shared_id = next(v.id for v in shared if v.name == "Runde 2 i Syd")
    assert post_form(bo, f"/cases/views/{shared_id}/delete").status_code == 404  # not his
    anne = client_as("secretariat", "follow_up", email="anne@staff.example.dk")
    assert post_form(anne, f"/cases/views/{shared_id}/delete").status_code == 303
    assert view_names(anne.get("/cases").text) == ["Mine sene"]


def test_read_only_sees_the_table_without_bulk_actions(client_as: Signed) -> None:
    client = client_as("read_only")
    page = client.get("/cases?round=round2")
    assert row_names(page.text) == list(ROUND2_SYDDANMARK)
    assert 'name="case"' not in page.text and 'action="/bulk"' not in page.text


def test_case_query_writes_back_what_it_parsed() -> None:
    query = CaseQuery(
        cohort="round2", late=True, search="od", page=2, size=50, columns=("plan_url",)
    )
    assert query.query_string() == "round=round2&late=1&q=od&page=2&size=50&col=plan_url"
    assert query.filter_string() == "round=round2&late=1&q=od&size=50&col=plan_url"
    assert CaseQuery().query_string() == ""


def test_the_page_reads_what_parse_table_views_and_bulk_triggers_read(
    client_as: Signed,
) -> None:
    """``Console.page`` (one transaction) is those four reads one after the other."""
    client = client_as("secretariat", "follow_up")
    console = web_service(client).console
    service = web_service(client)
    user = next(u for u in service.accounts.list_users() if "follow_up" in u.roles)
    params = [("round", "round2"), ("late", "1"), ("sort", "-since"), ("page", "9")]
    page = console.page(params, user_id=user.id, roles=tuple(user.roles))
    options, query = console.parse(params)
    assert page.query == query
    assert page.table == console.table(options, query)  # page 9 shows the last page
    assert page.views == console.views(user.id, tuple(user.roles))
    assert page.triggers == console.bulk_triggers(tuple(user.roles))
    assert page.triggers  # follow_up fires some of DK2020's triggers
