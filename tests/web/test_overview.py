"""The programme overview (``GET /``) on the web tests' programme (98 cases)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from dk2020_data import DK2020_STAFF_ROLES as STAFF_ROLES

from .conftest import NOW, web_service


def _row(html: str, title: str) -> str:
    found = re.search(rf"<th scope=\"row\">{re.escape(title)}</th>(.*?)</tr>", html, re.S)
    assert found, title
    return found.group(1)


def _numbers(row: str) -> list[str]:
    return re.findall(r"<td class=\"app-numeric\">(?:<a [^>]*>)?([\d.]+)", row)


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_every_staff_role_sees_the_overview(
    client_as: Callable[..., TestClient], role: str
) -> None:
    page = client_as(role).get("/")
    assert page.status_code == 200
    assert "<h1>Programmets overblik</h1>" in page.text


def test_nobody_signed_in_is_sent_to_sign_in(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/sign-in")


def test_the_tables_count_cases_per_state_round_and_region(
    client_as: Callable[..., TestClient],
) -> None:
    html = client_as("read_only").get("/").text
    table = html.split("Sager pr. tilstand og runde")[1].split("</table>")[0]
    # Columns: round 1, round 2, no round, total (the order of the workflow's cohorts).
    assert '<th scope="col" class="app-numeric">Runde 1</th>' in table
    assert _numbers(_row(table, "Inviteret")) == ["0", "0", "92", "92"]
    assert _numbers(_row(table, "Deltagelse besluttet")) == ["3", "3", "0", "6"]
    # Each cell links to the cases page filtered by its state and round.
    assert 'href="/cases?state=decided&amp;round=round2"' in table
    by_region = html.split("Sager pr. tilstand og region")[1].split("</table>")[0]
    assert 'href="/cases?state=decided&amp;region=Syddanmark"' in by_region


def test_the_round_and_region_filter_narrows_the_chart_and_tables(
    client_as: Callable[..., TestClient],
) -> None:
    html = client_as("secretariat").get("/?round=round2&region=Syddanmark").text
    table = html.split("Sager pr. tilstand og runde (Syddanmark)")[1].split("</table>")[0]
    assert _numbers(_row(table, "Deltagelse besluttet"))[-1] == "3"
    assert 'href="/cases?region=Syddanmark&amp;state=decided&amp;round=round2"' in table
    svg = html.split("<svg")[1].split("</svg>")[0]
    assert "Runde 2, Syddanmark" in svg
    assert "Deltagelse besluttet: 3" in svg


def test_the_chart_is_an_accessible_svg(client_as: Callable[..., TestClient]) -> None:
    html = client_as("secretariat").get("/").text
    svg = html.split("<svg")[1].split("</svg>")[0]
    assert 'role="img"' in svg
    assert '<title id="overview-chart-title">' in svg
    assert '<desc id="overview-chart-desc">' in svg
    assert "style=" not in svg  # the CSP allows no inline style
    # Every bar is labelled with its state and its value as text.
    assert ">Inviteret</text>" in svg
    assert ">92</text>" in svg


def test_english_titles_come_from_the_workflow(client_as: Callable[..., TestClient]) -> None:
    client = client_as("secretariat")
    client.cookies.set("dk2020flow_lang", "en")
    html = client.get("/").text
    assert "<h1>Programme overview</h1>" in html
    assert '<th scope="row">Invited</th>' in html
    assert "Round 2" in html


def test_the_late_list_names_the_organisations_and_how_late(
    client_as: Callable[..., TestClient],
) -> None:
    client = client_as("secretariat")
    late = web_service(client).late_deadlines(NOW)
    html = client.get("/").text
    section = html.split('id="late"')[1].split("</section>")[0]
    assert late
    assert f"{len(late)} sager er for sent på en frist." in section
    assert 'href="/cases?late=1"' in section
    rows = re.findall(r"<tr>\s*<th scope=\"row\"><a href=\"/cases/(\d+)\">", section)
    assert [int(r) for r in rows] == [d.case.id for d in late][:50]
    assert "app-late" in section


def test_the_next_14_days_and_the_mail_waiting(client_as: Callable[..., TestClient]) -> None:
    client = client_as("secretariat")
    overview = web_service(client).overview(NOW)
    html = client.get("/").text
    coming = html.split('id="coming"')[1].split("</section>")[0]
    assert "De næste 14 dage" in coming
    if overview.deadlines_total:
        assert f"{overview.deadlines_total} frister udløber i perioden." in coming
    else:
        assert "Ingen frister i perioden." in coming
    for line in overview.deadlines:
        assert f'href="/cases/{line.case_id}"' in coming
    mail = html.split('id="mail"')[1].split("</section>")[0]
    assert "/operations/outbox" in mail


def test_organisation_names_are_escaped(client_as: Callable[..., TestClient]) -> None:
    client = client_as("secretariat")
    service = web_service(client)
    with service.store.transaction() as tx:
        tx.connection.exec_driver_sql(  # type: ignore[attr-defined]
            "UPDATE organisations SET name = '<script>alert(1)</script>' WHERE name = 'Odense'"
        )
    html = client.get("/?region=Syddanmark").text
    assert "<script>alert(1)</script>" not in html
