"""The template context: plain data only, aware times, the views the engine passes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.definition.loader import LoadedWorkflow, load_workflow
from dk2020flow.definition.model import ItemStatus, Workflow
from dk2020flow.notify import (
    CaseView,
    ChecklistEntry,
    ChecklistView,
    DeadlineView,
    MailKind,
    OrganisationView,
    RecipientView,
    TransitionView,
    build_context,
    event_view,
    sample_context,
    template_kinds,
)
from dk2020flow.service.participants import sample_of_data_set

CPH = ZoneInfo("Europe/Copenhagen")
NOW = dt.datetime(2020, 8, 20, 8, 0, tzinfo=dt.UTC)


def _case(**changes: object) -> CaseView:
    values: dict[str, object] = {
        "id": 751,
        "reference": "DK2020-751",
        "state": "decided",
        "cohort": "round1",
        "data": {"decision_date": dt.date(2020, 8, 27), "staff_hours_per_week": 60},
        "opened_at": dt.datetime(2020, 6, 15, 7, 0, tzinfo=dt.UTC),
    }
    values.update(changes)
    return CaseView(**values)  # type: ignore[arg-type]


def _build(workflow: Workflow, language: str = "da", **kwargs: object) -> dict[str, object]:
    return build_context(
        workflow,
        language,
        now=NOW,
        case=kwargs.pop("case", _case()),  # type: ignore[arg-type]
        organisation=kwargs.pop(  # type: ignore[arg-type]
            "organisation",
            OrganisationView(
                code="751",
                name="Aarhus",
                region="Midtjylland",
                titles={"da": "Aarhus Kommune", "en": "Aarhus Municipality"},
            ),
        ),
        recipient=RecipientView(
            name="Mette", email="mette@aarhus.example.dk", role="contact_person"
        ),
        **kwargs,  # type: ignore[arg-type]
    )


def test_context_is_plain_data_with_titles_in_the_language(workflow: Workflow) -> None:
    context = _build(workflow)
    assert context["case"] == {
        "id": 751,
        "reference": "DK2020-751",
        "state": "decided",
        "state_title": "Deltagelse besluttet",
        "cohort": "round1",
        "cohort_title": "Runde 1",
        "data": {"decision_date": dt.date(2020, 8, 27), "staff_hours_per_week": 60},
        "opened_at": dt.datetime(2020, 6, 15, 7, 0, tzinfo=dt.UTC),
    }
    assert context["organisation"] == {
        "code": "751",
        "name": "Aarhus",
        "title": "Aarhus Kommune",
        "region": "Midtjylland",
        "kind": "",
        "country": "",
        "group": "",
    }
    assert context["recipient"]["role_title"] == "Kontaktperson"  # type: ignore[index]
    assert context["cohort"]["application_deadline"] == dt.datetime(  # type: ignore[index]
        2020, 10, 21, 23, 59, tzinfo=CPH
    )
    assert context["deadline"] is None
    assert context["event"] is None
    assert context["links"]["help_email"] == "dk2020@concito.example.dk"  # type: ignore[index]
    assert [c["name"] for c in context["cohorts"]] == ["pilot", "round1", "round2"]  # type: ignore[attr-defined]
    english = _build(workflow, "en")
    assert english["case"]["state_title"] == "Participation decided"  # type: ignore[index]
    assert english["organisation"]["title"] == "Aarhus Municipality"  # type: ignore[index]


def _walk(value: object) -> None:
    allowed = (str, int, float, bool, dt.date, dt.time, type(None))
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            _walk(item)
    elif isinstance(value, list):
        for item in value:
            _walk(item)
    else:
        assert isinstance(value, allowed), type(value)


@pytest.mark.parametrize("kind", list(MailKind))
def test_sample_context_holds_only_plain_types(workflow: Workflow, kind: MailKind) -> None:
    _walk(sample_context(workflow, "da", kind))


def test_objects_in_case_data_are_refused(workflow: Workflow) -> None:
    class Row:
        pass

    with pytest.raises(TypeError, match=r"case\.data\.row is a Row"):
        _build(workflow, case=_case(data={"row": Row()}))


def test_naive_times_are_refused(workflow: Workflow) -> None:
    with pytest.raises(ValueError, match=r"deadline\.due_at must be a timezone-aware"):
        _build(
            workflow,
            deadline=DeadlineView(name="application_deadline", due_at=dt.datetime(2020, 10, 21)),
        )


def test_deadline_takes_the_timer_description_and_knows_if_it_is_overdue(
    workflow: Workflow,
) -> None:
    due = dt.datetime(2020, 10, 21, 21, 59, tzinfo=dt.UTC)
    context = _build(workflow, deadline=DeadlineView(name="application_deadline", due_at=due))
    assert context["deadline"] == {
        "name": "application_deadline",
        "title": "Ansøgningsfrist",
        "description": "The application with the signed commitment letter.",
        "due_at": due,
        "extended": False,
        "overdue": False,
    }
    late = build_context(
        workflow,
        "da",
        now=due,
        case=_case(),
        organisation=OrganisationView(code="751", name="Aarhus", region="Midtjylland"),
        recipient=RecipientView(name="M", email="m@aarhus.example.dk", role="contact_person"),
        deadline=DeadlineView(name="application_deadline", due_at=due),
    )
    assert late["deadline"]["overdue"] is True


def test_checklist_items_in_workflow_order_with_status_titles(workflow: Workflow) -> None:
    checklist = ChecklistView(
        name="capf",
        entries={"P2.3": ChecklistEntry(status=ItemStatus.NOT_MET, comment="Mangler transport.")},
    )
    context = _build(workflow, checklist=checklist)
    items = context["checklist"]["items"]  # type: ignore[index]
    assert len(items) == 16
    assert items[0] == {
        "id": "P1.1",
        "title": "Vision, forpligtelse og politisk opbakning",
        "status": "",
        "status_title": "ikke screenet endnu",
        "comment": "",
    }
    p23 = next(item for item in items if item["id"] == "P2.3")
    assert (p23["status"], p23["status_title"], p23["comment"]) == (
        "not_met",
        "ikke opfyldt",
        "Mangler transport.",
    )


def test_transition_title_comes_from_the_workflow(workflow: Workflow) -> None:
    context = _build(
        workflow, transition=TransitionView(trigger="request_revision", comment="Se P2.3.")
    )
    assert context["transition"] == {
        "trigger": "request_revision",
        "title": "Bed om revision",
        "comment": "Se P2.3.",
        "actor": "",
    }


def test_event_view_from_the_workflow(workflow: Workflow) -> None:
    event = event_view(workflow, "da", "round1", "start_conference", reminder=True)
    assert event.title == "Startkonference for runde 1"
    assert event.starts_at == dt.datetime(2020, 11, 26, 10, 0, tzinfo=CPH)
    assert event.ends_at == dt.datetime(2020, 11, 26, 16, 0, tzinfo=CPH)
    assert event.reminder
    assert not event.cancelled


def test_the_title_is_the_data_sets_in_the_language_else_the_name(workflow: Workflow) -> None:
    titled = OrganisationView(
        code="400", name="Bornholm", titles={"da": "Bornholms Regionskommune"}
    )
    for language, title in (("da", "Bornholms Regionskommune"), ("en", "Bornholm")):
        context = _build(workflow, language, organisation=titled)
        assert context["organisation"]["title"] == title  # type: ignore[index]
        assert context["municipality"] is context["organisation"]  # templates of 0.x


def test_template_kinds_of_the_dk2020_workflow(workflow: Workflow) -> None:
    kinds = template_kinds(workflow)
    assert kinds["invitation"] == {MailKind.STATE_ENTRY}
    assert kinds["escalation"] == {MailKind.TIMER}
    assert kinds["event_invitation"] == {MailKind.EVENT}
    assert kinds["review_overdue"] == {MailKind.TIMER}


def test_every_context_is_a_fresh_copy(workflow: Workflow) -> None:
    # What does not change with the case is worked out once per workflow and
    # language; a caller changing one context must not change the next one.
    checklist = ChecklistView(name=next(iter(workflow.checklists)))
    first = _build(workflow, checklist=checklist)
    expected = _build(workflow, checklist=checklist)
    for key in ("workflow", "links", "checklist", "cohort"):
        part = first[key]
        assert isinstance(part, dict)
        part["title"] = "changed"
    cohorts = first["cohorts"]
    assert isinstance(cohorts, list)
    cohorts[0]["title"] = "changed"
    cohorts.clear()
    items = first["checklist"]["items"]  # type: ignore[index]
    items[0]["title"] = "changed"
    assert _build(workflow, checklist=checklist) == expected
    assert _build(workflow, "en", checklist=checklist)["workflow"] != expected["workflow"]


# ----------------------------------------------------------------------------- samples of any programme

_ROOT = Path(__file__).resolve().parents[3]
_DANISH = ("aarhus", "dk2020", ".dk", "kommune", "751", "bundsgaard", "lindholm", "kjær")


def _loaded(name: str) -> LoadedWorkflow:
    return load_workflow(_ROOT / "workflows" / f"{name}.yaml", check_templates=False)


def test_the_sample_organisation_is_the_first_of_the_workflows_data_set() -> None:
    """DK2020's sample shows its first municipality, the EU Mission's its first city: each
    programme's own data (#18)."""
    dk2020 = _loaded("dk2020")
    eu_mission = _loaded("eu_mission")
    first = sample_of_data_set(dk2020.workflow, dk2020.organisations_file)
    assert (first.code, first.name, first.titles["da"]) == ("101", "København", "København Kommune")
    city = sample_of_data_set(eu_mission.workflow, eu_mission.organisations_file)
    assert (city.code, city.name, city.country, city.kind) == ("BE-LEU", "Leuven", "BE", "city")


@pytest.mark.parametrize("kind", list(MailKind))
def test_a_sample_of_another_programme_names_nothing_danish(kind: MailKind) -> None:
    """Without a data set the sample organisation, its people, addresses, reference and
    links are neutral (example.org), in the workflow's calendar country: nothing of DK2020."""
    loaded = _loaded("eu_mission")
    workflow = loaded.workflow
    context = sample_context(workflow, "en", kind)
    shown = repr(context).lower()
    for word in _DANISH:
        assert word not in shown, word
    assert context["organisation"]["name"] == "Example Organisation"
    assert context["organisation"]["country"] == (workflow.calendar.country or "")
    assert context["case"]["reference"] == "eu_mission-EX-1"
    assert context["recipient"]["email"].endswith(("@example.org", ".example.eu"))


def test_the_sample_carries_a_value_of_each_of_the_workflows_fields() -> None:
    workflow = _loaded("eu_mission").workflow
    data = sample_context(workflow, "en", MailKind.STATE_ENTRY)["case"]["data"]
    assert set(workflow.fields) <= set(data)
    assert sample_context(workflow, "en", MailKind.STATE_ENTRY, sparse=True)["case"]["data"] == {}


def test_a_given_organisation_is_the_samples() -> None:
    workflow = _loaded("eu_mission").workflow
    gent = OrganisationView(
        code="BE-GNT", name="Gent", country="BE", titles={"en": "City of Ghent"}
    )
    context = sample_context(workflow, "en", MailKind.TRANSITION, organisation=gent)
    assert context["organisation"]["title"] == "City of Ghent"
    assert context["case"]["reference"] == "eu_mission-BE-GNT"
