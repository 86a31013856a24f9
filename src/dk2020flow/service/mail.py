"""Turning a decision's mail intents into rendered outbox rows.

Recipients come by role: the organisation's contacts, the case's own
``<role>_email`` fields, then the role's shared mailbox from the workflow
file. A mail with no recipient is parked with its reason, never dropped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dk2020flow.definition.model import CalendarEvent, Workflow, text_in
from dk2020flow.engine import timers as timing
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot, Decision, MailIntent
from dk2020flow.notify.context import (
    CaseView,
    ChecklistEntry,
    ChecklistView,
    DeadlineView,
    EventView,
    OrganisationView,
    RecipientView,
    TransitionView,
    build_context,
)
from dk2020flow.service.links import CaseLinks, case_links_from
from dk2020flow.store.port import Contact, NewMail, OutboxStatus, Tx

if TYPE_CHECKING:
    # Jinja2 and babel (the renderer), icalendar and the e-mail package are imported
    # when a mail is rendered: `case show` reads the composer's contacts only (#15.18).
    from dk2020flow.notify.message import Mailbox
    from dk2020flow.notify.render import RenderedMail, Renderer

__all__ = ["MailComposer", "Preview", "Recipients", "case_links_from"]

_EVENT_ICS_KEPT = 64
_OPENINGS_KEPT = 256


class Recipients(dict[str, list[Contact]]):
    """A case's recipients by role (``MailComposer.contacts``), with ``known``: the
    addresses (lower-cased) that are rows of the organisation's contacts, the people a
    case link may sign in."""

    known: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True, slots=True)
class Preview:
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    language: str
    mail: RenderedMail


class MailComposer:
    """Renders mail for one workflow version at a time (renderers are cached per version)."""

    def __init__(
        self,
        *,
        sender: tuple[str | None, str | None] = (None, None),
        links: CaseLinks | None = None,
    ) -> None:
        """``sender``: the (name, address) a setting puts in place of every workflow's
        ``sender:`` (``DK2020FLOW_MAIL_SENDER_NAME`` / ``DK2020FLOW_MAIL_SENDER``); None
        where not set. ``links``: the links to the case that mail carries (none without
        a public address: ``service/links.py``)."""
        self._renderers: dict[int, Renderer] = {}
        self.links = links if links is not None else CaseLinks(public_url=None)
        self._sender_override = sender
        # The .ics of a programme event at one instant for the same recipients: made
        # once, however often it is rendered (a retry, a preview).
        self._event_ics: dict[tuple[Any, ...], str] = {}
        # When mail made at one instant may go out: the same for every mail of a
        # fan-out (a batch of timers, an event invitation to every case).
        self._openings: dict[tuple[int, str, dt.datetime], dt.datetime] = {}

    def _not_before(self, wf: CompiledWorkflow, now: dt.datetime) -> dt.datetime:
        key = (wf.definition_id, wf.content_hash, now)
        found = self._openings.get(key)
        if found is None:
            definition = wf.workflow
            found = timing.next_office_opening(now, definition.office_hours, wf.calendar, wf.tz)
            if len(self._openings) >= _OPENINGS_KEPT:
                self._openings.clear()
            self._openings[key] = found
        return found

    def sender(self, definition: Workflow) -> Mailbox | None:
        """Who the workflow's mail is from: the setting's override, else the workflow's
        ``sender:``; None when neither names an address (delivery then uses its own)."""
        name, address = self._sender_override
        own = definition.sender
        if address:
            return (name if name is not None else "", address)
        if own is not None:
            return (name if name is not None else own.name, own.email)
        return None

    def renderer(self, wf: CompiledWorkflow) -> Renderer:
        found = self._renderers.get(wf.definition_id)
        if found is None:
            from dk2020flow.notify.render import Renderer

            found = Renderer(wf.templates, timezone=wf.workflow.timezone)
            self._renderers[wf.definition_id] = found
        return found

    def render_all(
        self, tx: Tx, wf: CompiledWorkflow, decision: Decision, now: dt.datetime
    ) -> list[NewMail]:
        mails: list[NewMail] = []
        if not decision.mails:
            return mails
        # One decision, one case: its recipients are looked up once for all its mail.
        contacts = self.contacts(tx, wf, decision.case)
        for intent in decision.mails:
            mails.extend(self.render(tx, wf, decision.case, intent, now, contacts=contacts))
        return mails

    def contacts(
        self,
        tx: Tx,
        wf: CompiledWorkflow,
        case: CaseSnapshot,
        *,
        known: Sequence[Contact] | None = None,
    ) -> Recipients:
        """Recipients by role: the organisation's contacts, the case's own `<role>_email`
        fields, then the role's shared mailbox from the workflow file.

        ``known``: the organisation's contacts, read already (``Tx.contacts_for``).
        """
        by_role = Recipients()
        listed = tx.contacts(case.organisation_code) if known is None else known
        for contact in listed:
            by_role.setdefault(contact.role, []).append(contact)
        by_role.known = frozenset(contact.email.lower() for contact in listed)
        for role_name, role in wf.workflow.roles.items():
            email = case.data.get(f"{role_name}_email")
            if isinstance(email, str) and email and not tx.is_forgotten(email):  # privacy
                name = case.data.get(f"{role_name}_name")
                own = Contact(
                    organisation_code=case.organisation_code,
                    role=role_name,
                    name=name if isinstance(name, str) else "",
                    email=email,
                    language=wf.workflow.default_language,
                )
                if all(c.email != email for c in by_role.get(role_name, [])):
                    by_role.setdefault(role_name, []).insert(0, own)
            if not by_role.get(role_name) and role.email:
                by_role[role_name] = [
                    Contact(
                        organisation_code=case.organisation_code,
                        role=role_name,
                        name=role.name or text_in(role.title, wf.workflow.default_language),
                        email=role.email,
                        language=wf.workflow.default_language,
                    )
                ]
        return by_role

    def render(
        self,
        tx: Tx,
        wf: CompiledWorkflow,
        case: CaseSnapshot,
        intent: MailIntent,
        now: dt.datetime,
        *,
        language: str | None = None,
        reminder: bool = False,
        contacts: Mapping[str, list[Contact]] | None = None,
        sign: bool = True,
    ) -> list[NewMail]:
        """Render one mail intent: one message per To recipient, greeting that recipient.

        Each Cc recipient is copied once: on the first message in their language, or
        the first message when none is in their language (docs/templates.md).
        A mail with no To recipient is parked with the reason (and its intent, so
        it can be rendered again once the case has a contact in that role).
        ``contacts``: the case's recipients by role (``contacts``), if known already.
        ``sign=False`` (a preview): a case link shows as ``…/sign-in/case?token=…``, so
        a preview signs nobody in and writes nothing (it runs in a read transaction).
        """
        definition = wf.workflow
        sender = self.sender(definition)
        cause = intent_to_json(intent, reminder=reminder, sender=sender)
        if contacts is None:
            contacts = self.contacts(tx, wf, case)
        to = [c for role in intent.to for c in contacts.get(role, [])]
        cc = [c for role in intent.cc for c in contacts.get(role, [])]
        not_before = now if intent.urgent else self._not_before(wf, now)
        found = tx.find_organisation(case.organisation_code)
        organisation = OrganisationView(
            code=case.organisation_code,
            name=case.organisation_name,
            region=case.region,
            kind=found.kind if found else "",
            country=found.country if found else "",
            group=found.group if found else "",
            titles=dict(found.titles) if found else {},
        )

        def lang_of(contact: Contact) -> str:
            if language:
                return language
            return (
                contact.language
                if contact.language in definition.languages
                else definition.default_language
            )

        if not to:
            missing = ", ".join(intent.to)
            recipient = Contact(
                organisation_code=case.organisation_code,
                role=intent.to[0],
                name="",
                email="",
                language=definition.default_language,
            )
            rendered = self._render_one(
                wf, case, organisation, intent, recipient, lang_of(recipient), now, reminder, ""
            )
            return [
                NewMail(
                    case_id=case.id,
                    template=intent.template,
                    language=lang_of(recipient),
                    to=(),
                    cc=tuple((c.name, c.email) for c in cc),
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    ics=None,
                    not_before=not_before,
                    created_at=now,
                    urgent=intent.urgent,
                    status=OutboxStatus.PARKED,
                    reason=f"no recipient in role {missing} for {case.organisation_name}: "
                    "add a contact (`dk2020flow orgs import`), then `outbox retry`",
                    intent=cause,
                )
            ]
        # One copy per To address (a person in two roles gets one), in their language.
        to = [c for i, c in enumerate(to) if all(c.email != t.email for t in to[:i])]
        languages = list(dict.fromkeys(lang_of(c) for c in to))
        to_addresses = {c.email for c in to}
        first_in: dict[str, Contact] = {}
        for contact in to:
            first_in.setdefault(lang_of(contact), contact)
        copied: dict[str, list[Contact]] = {}
        for contact in cc:
            if contact.email in to_addresses:
                continue
            lang = lang_of(contact) if lang_of(contact) in languages else languages[0]
            group = copied.setdefault(first_in[lang].email, [])
            if all(c.email != contact.email for c in group):
                group.append(contact)
        mails: list[NewMail] = []
        for contact in to:
            lang = lang_of(contact)
            copy_cc = copied.get(contact.email, [])
            link = self._case_link(
                tx, wf, case, contact, contacts, shared=bool(copy_cc), now=now, sign=sign
            )
            rendered = self._render_one(
                wf, case, organisation, intent, contact, lang, now, reminder, link
            )
            attendees = tuple((c.name, c.email) for c in (contact, *copy_cc))
            mails.append(
                NewMail(
                    case_id=case.id,
                    template=intent.template,
                    language=lang,
                    to=((contact.name, contact.email),),
                    cc=tuple((c.name, c.email) for c in copy_cc),
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    ics=self._ics(wf, case, intent, now, lang, sender, attendees),
                    not_before=not_before,
                    created_at=now,
                    urgent=intent.urgent,
                    intent=cause,
                )
            )
        return mails

    def _case_link(
        self,
        tx: Tx,
        wf: CompiledWorkflow,
        case: CaseSnapshot,
        contact: Contact,
        contacts: Mapping[str, list[Contact]],
        *,
        shared: bool,
        now: dt.datetime,
        sign: bool = True,
    ) -> str:
        """The link to the case one copy carries (docs/portal.md, "Links in mail"): a
        case link that signs its one recipient in when they are a contact of the case;
        else the case's plain address (the console's for a role's shared mailbox);
        "" without a public address."""
        links = self.links
        if not links.public_url or case.id is None:
            return ""
        known = contacts.known if isinstance(contacts, Recipients) else frozenset()
        if not shared and contact.email.lower() in known:
            if not sign:
                return links.unsigned_url()
            return links.signed_url(tx, case.id, contact.email, now)
        role = wf.workflow.roles.get(contact.role)
        if role is not None and role.email and role.email == contact.email:
            return links.console_url(case.id)
        return links.portal_url(case.id)

    def _render_one(
        self,
        wf: CompiledWorkflow,
        case: CaseSnapshot,
        organisation: OrganisationView,
        intent: MailIntent,
        recipient: Contact,
        language: str,
        now: dt.datetime,
        reminder: bool,
        case_link: str,
    ) -> RenderedMail:
        definition = wf.workflow
        deadline: DeadlineView | None = None
        if intent.deadline_at is not None and intent.timer:
            deadline = DeadlineView(
                name=intent.timer, due_at=intent.deadline_at, extended=intent.extended
            )
        event: EventView | None = None
        if intent.event:
            event_name, spec = event_spec(definition, intent)
            starts, ends = timing.event_instants(spec, wf.tz)
            event = EventView(
                name=event_name,
                title=text_in(spec.title, language, event_name),
                starts_at=starts,
                ends_at=ends,
                location=spec.location,
                cancelled=spec.cancelled,
                reminder=reminder,
            )
        transition = (
            TransitionView(trigger=intent.trigger, comment=intent.comment, actor=intent.actor)
            if intent.trigger
            else None
        )
        checklist = None
        if definition.checklists:
            name = next(iter(definition.checklists))
            entries = case.checklists.get(name, {})
            checklist = ChecklistView(
                name=name,
                entries={
                    k: ChecklistEntry(status=v.status, comment=v.comment)
                    for k, v in entries.items()
                },
            )
        context = build_context(
            definition,
            language,
            now=now,
            case=CaseView(
                id=case.id or 0,
                reference=f"{definition.workflow}-{case.organisation_code}",
                state=case.state,
                cohort=case.cohort,
                data=case.data,  # build_context copies it
                opened_at=case.opened_at,
            ),
            organisation=organisation,
            recipient=RecipientView(
                name=recipient.name, email=recipient.email, role=recipient.role
            ),
            deadline=deadline,
            event=event,
            transition=transition,
            checklist=checklist,
            case_link=case_link,
        )
        return self.renderer(wf).render(intent.template, language, context)

    def _ics(
        self,
        wf: CompiledWorkflow,
        case: CaseSnapshot,
        intent: MailIntent,
        now: dt.datetime,
        language: str,
        sender: Mailbox | None,
        attendees: tuple[Mailbox, ...],
    ) -> str | None:
        """The calendar file of one copy: a programme event as a meeting request from
        the programme's sender to this copy's recipients (RFC 5546: ORGANIZER and an
        ATTENDEE each), or a deadline, published by the sender and titled in the copy's
        language. None for any other mail (a staff escalation carries none: the
        engine does not ask for it)."""
        if not intent.event and not (intent.ics and intent.deadline_at and intent.timer):
            return None
        definition = wf.workflow
        organizer = sender
        if organizer is None and definition.links.help_email:
            organizer = (definition.links.help_name, definition.links.help_email)
        from dk2020flow.notify.ics import deadline_ics, event_ics

        if intent.event:
            key = (
                wf.definition_id,
                wf.content_hash,
                intent.event,
                intent.cancelled,
                intent.sequence,
                now,
                language,
                organizer,
                attendees,
            )
            found = self._event_ics.get(key)
            if found is not None:
                return found
            cohort_name = intent.event.split(".", 1)[0]
            event_name, spec = event_spec(definition, intent)
            found = event_ics(
                spec,
                uid=f"event-{definition.workflow}-{cohort_name}-{event_name}@dk2020flow",
                timezone=definition.timezone,
                language=language,
                stamp=now,
                organizer=organizer,
                attendees=attendees,
            )
            if len(self._event_ics) >= _EVENT_ICS_KEPT:
                self._event_ics.clear()
            self._event_ics[key] = found
            return found
        if intent.ics and intent.deadline_at is not None and intent.timer:
            return deadline_ics(
                title=deadline_title(definition, case.state, intent.timer, language),
                due_at=intent.deadline_at,
                uid=f"deadline-{definition.workflow}-{case.organisation_code}-{intent.timer}@dk2020flow",
                timezone=definition.timezone,
                sequence=1 if intent.extended else 0,
                organizer=organizer,
            )
        return None


def deadline_title(definition: Workflow, state: str, timer: str, language: str) -> str:
    """ "DK2020 – klimaplaner i hele Danmark: Kommunalbestyrelsens svar": the workflow's
    title and the timer's ``title:`` in ``language`` (the timer's name, made readable,
    when it has none)."""
    spec = definition.states[state].timers.get(timer) if state in definition.states else None
    name = text_in(spec.title, language) if spec is not None else ""
    name = name or timer.replace("_", " ").capitalize()
    return f"{text_in(definition.title, language, definition.workflow)}: {name}"


def event_spec(definition: Workflow, intent: MailIntent) -> tuple[str, CalendarEvent]:
    """(name, spec) of the programme event a mail is about, cancelled or with a later
    sequence when the intent says so (an event removed from a newer version)."""
    assert intent.event is not None
    cohort_name, event_name = intent.event.split(".", 1)
    spec = definition.cohorts[cohort_name].events[event_name]
    sequence = max(spec.sequence, intent.sequence or 0)
    if (intent.cancelled and not spec.cancelled) or sequence != spec.sequence:
        spec = spec.model_copy(
            update={"cancelled": spec.cancelled or intent.cancelled, "sequence": sequence}
        )
    return event_name, spec


def roles_mailed(wf: CompiledWorkflow) -> set[str]:
    roles: set[str] = set()
    definition = wf.workflow
    for state in definition.states.values():
        for spec in state.on_entry.mail:
            roles.update(spec.to)
        for timer in state.timers.values():
            for spec in timer.on_due.mail:
                roles.update(spec.to)
    for transition in definition.transitions:
        for spec in transition.mail:
            roles.update(spec.to)
    return roles


def all_templates(wf: CompiledWorkflow) -> set[str]:
    return {name.split(".", 1)[0] for name in wf.templates if not name.startswith("_")}


def find_mail_spec(wf: CompiledWorkflow, template: str) -> tuple[MailIntent, str] | None:
    """The first place in the workflow that sends ``template``, as an intent to preview."""
    definition = wf.workflow
    for state in definition.states.values():
        for spec in state.on_entry.mail:
            if spec.template == template:
                return MailIntent(template=template, to=spec.to, cc=spec.cc, kind="state_entry"), ""
        for name, timer in state.timers.items():
            specs = [*timer.on_due.mail]
            if timer.reminders:
                specs.append(timer.reminders.mail)
            if timer.repeat:
                specs.append(timer.repeat.mail)
            if timer.escalate:
                specs.append(timer.escalate.mail)
            for spec in specs:
                if spec.template == template:
                    return MailIntent(
                        template=template, to=spec.to, cc=spec.cc, kind="timer", timer=name
                    ), name
    for transition in definition.transitions:
        for spec in transition.mail:
            if spec.template == template:
                return MailIntent(
                    template=template,
                    to=spec.to,
                    cc=spec.cc,
                    kind="transition",
                    trigger=transition.trigger,
                ), ""
    for cohort_name, cohort in definition.cohorts.items():
        for event_name, event in cohort.events.items():
            if event.mail.template == template:
                return MailIntent(
                    template=template,
                    to=event.mail.to,
                    cc=event.mail.cc,
                    kind="event",
                    event=f"{cohort_name}.{event_name}",
                ), ""
    return None


def intent_to_json(
    intent: MailIntent, *, reminder: bool = False, sender: Mailbox | None = None
) -> dict[str, Any]:
    """A mail intent as stored with its outbox row, with the sender its mail is from
    (``SENDER_KEY``, read back by delivery: ``notify.message.stored_sender``)."""
    from dk2020flow.notify.message import SENDER_KEY

    return {
        SENDER_KEY: list(sender) if sender is not None else None,
        "template": intent.template,
        "to": list(intent.to),
        "cc": list(intent.cc),
        "urgent": intent.urgent,
        "kind": intent.kind,
        "timer": intent.timer,
        "deadline_at": intent.deadline_at.isoformat() if intent.deadline_at else None,
        "extended": intent.extended,
        "event": intent.event,
        "trigger": intent.trigger,
        "comment": intent.comment,
        "actor": intent.actor,
        "ics": intent.ics,
        "cancelled": intent.cancelled,
        "sequence": intent.sequence,
        "reminder": reminder,
    }


def intent_from_json(data: Mapping[str, Any]) -> tuple[MailIntent, bool]:
    """The stored intent of an outbox row back as (intent, reminder)."""
    deadline_at = data.get("deadline_at")
    intent = MailIntent(
        template=str(data["template"]),
        to=tuple(data.get("to", ())),
        cc=tuple(data.get("cc", ())),
        urgent=bool(data.get("urgent", False)),
        kind=str(data.get("kind", "state_entry")),
        timer=data.get("timer"),
        deadline_at=dt.datetime.fromisoformat(deadline_at) if deadline_at else None,
        extended=bool(data.get("extended", False)),
        event=data.get("event"),
        trigger=data.get("trigger"),
        comment=str(data.get("comment", "")),
        actor=str(data.get("actor", "")),
        ics=bool(data.get("ics", False)),
        cancelled=bool(data.get("cancelled", False)),
        sequence=int(data["sequence"]) if data.get("sequence") is not None else None,
    )
    return intent, bool(data.get("reminder", False))
