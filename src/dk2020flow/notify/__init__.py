"""Mail: rendering templates, building messages and calendar files, and transports.

Pure pieces the engine, the outbox and the daemon call; nothing here touches
the database or reads the clock.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dk2020flow.notify.context import (
        CaseView as CaseView,
    )
    from dk2020flow.notify.context import (
        ChecklistEntry as ChecklistEntry,
    )
    from dk2020flow.notify.context import (
        ChecklistView as ChecklistView,
    )
    from dk2020flow.notify.context import (
        DeadlineView as DeadlineView,
    )
    from dk2020flow.notify.context import (
        EventView as EventView,
    )
    from dk2020flow.notify.context import (
        MailKind as MailKind,
    )
    from dk2020flow.notify.context import (
        OrganisationView as OrganisationView,
    )
    from dk2020flow.notify.context import (
        RecipientView as RecipientView,
    )
    from dk2020flow.notify.context import (
        TemplateUse as TemplateUse,
    )
    from dk2020flow.notify.context import (
        TransitionView as TransitionView,
    )
    from dk2020flow.notify.context import (
        build_context as build_context,
    )
    from dk2020flow.notify.context import (
        event_view as event_view,
    )
    from dk2020flow.notify.context import (
        sample_context as sample_context,
    )
    from dk2020flow.notify.context import (
        sample_organisation as sample_organisation,
    )
    from dk2020flow.notify.context import (
        template_kinds as template_kinds,
    )
    from dk2020flow.notify.context import (
        template_uses as template_uses,
    )
    from dk2020flow.notify.errors import (
        DeliveryError as DeliveryError,
    )
    from dk2020flow.notify.errors import (
        InvalidAddressError as InvalidAddressError,
    )
    from dk2020flow.notify.errors import (
        MailConfigError as MailConfigError,
    )
    from dk2020flow.notify.errors import (
        MailError as MailError,
    )
    from dk2020flow.notify.errors import (
        MessageError as MessageError,
    )
    from dk2020flow.notify.errors import (
        PermanentDeliveryError as PermanentDeliveryError,
    )
    from dk2020flow.notify.errors import (
        TemporaryDeliveryError as TemporaryDeliveryError,
    )
    from dk2020flow.notify.ics import (
        CalendarAttachment as CalendarAttachment,
    )
    from dk2020flow.notify.ics import (
        CalendarMethod as CalendarMethod,
    )
    from dk2020flow.notify.ics import (
        deadline_calendar as deadline_calendar,
    )
    from dk2020flow.notify.ics import (
        deadline_ics as deadline_ics,
    )
    from dk2020flow.notify.ics import (
        deadline_uid as deadline_uid,
    )
    from dk2020flow.notify.ics import (
        event_calendar as event_calendar,
    )
    from dk2020flow.notify.ics import (
        event_ics as event_ics,
    )
    from dk2020flow.notify.ics import (
        event_uid as event_uid,
    )
    from dk2020flow.notify.message import (
        Mailbox as Mailbox,
    )
    from dk2020flow.notify.message import (
        MimeMessage as MimeMessage,
    )
    from dk2020flow.notify.message import (
        build_message as build_message,
    )
    from dk2020flow.notify.message import (
        envelope_recipients as envelope_recipients,
    )
    from dk2020flow.notify.message import (
        make_message_id as make_message_id,
    )
    from dk2020flow.notify.message import (
        one_line as one_line,
    )
    from dk2020flow.notify.message import (
        validate_address as validate_address,
    )
    from dk2020flow.notify.render import (
        RenderedMail as RenderedMail,
    )
    from dk2020flow.notify.render import (
        Renderer as Renderer,
    )
    from dk2020flow.notify.render import (
        TemplateProblem as TemplateProblem,
    )
    from dk2020flow.notify.render import (
        TemplateRenderError as TemplateRenderError,
    )
    from dk2020flow.notify.render import (
        layout_file as layout_file,
    )
    from dk2020flow.notify.render import (
        template_file as template_file,
    )
    from dk2020flow.notify.transports import (
        ConsoleTransport as ConsoleTransport,
    )
    from dk2020flow.notify.transports import (
        FolderTransport as FolderTransport,
    )
    from dk2020flow.notify.transports import (
        MailSettings as MailSettings,
    )
    from dk2020flow.notify.transports import (
        RecordingTransport as RecordingTransport,
    )
    from dk2020flow.notify.transports import (
        Refusal as Refusal,
    )
    from dk2020flow.notify.transports import (
        SendOutcome as SendOutcome,
    )
    from dk2020flow.notify.transports import (
        SendResult as SendResult,
    )
    from dk2020flow.notify.transports import (
        SmtpTransport as SmtpTransport,
    )
    from dk2020flow.notify.transports import (
        Transport as Transport,
    )
    from dk2020flow.notify.transports import (
        message_filename as message_filename,
    )
    from dk2020flow.notify.transports import (
        transport_from_settings as transport_from_settings,
    )

# Loaded on first use (PEP 562): importing one module of this package does not
# pull in all of them, so commands that need little start fast.
_WHERE = {
    "CalendarAttachment": "ics",
    "CalendarMethod": "ics",
    "CaseView": "context",
    "ChecklistEntry": "context",
    "ChecklistView": "context",
    "ConsoleTransport": "transports",
    "DeadlineView": "context",
    "DeliveryError": "errors",
    "EventView": "context",
    "FolderTransport": "transports",
    "InvalidAddressError": "errors",
    "MailConfigError": "errors",
    "MailError": "errors",
    "MailKind": "context",
    "MailSettings": "transports",
    "Mailbox": "message",
    "MessageError": "errors",
    "MimeMessage": "message",
    "OrganisationView": "context",
    "PermanentDeliveryError": "errors",
    "RecipientView": "context",
    "RecordingTransport": "transports",
    "Refusal": "transports",
    "RenderedMail": "render",
    "Renderer": "render",
    "SendOutcome": "transports",
    "SendResult": "transports",
    "SmtpTransport": "transports",
    "TemplateProblem": "render",
    "TemplateRenderError": "render",
    "TemplateUse": "context",
    "TemporaryDeliveryError": "errors",
    "TransitionView": "context",
    "Transport": "transports",
    "build_context": "context",
    "build_message": "message",
    "deadline_calendar": "ics",
    "deadline_ics": "ics",
    "deadline_uid": "ics",
    "envelope_recipients": "message",
    "event_calendar": "ics",
    "event_ics": "ics",
    "event_uid": "ics",
    "event_view": "context",
    "layout_file": "render",
    "make_message_id": "message",
    "message_filename": "transports",
    "one_line": "message",
    "sample_context": "context",
    "sample_organisation": "context",
    "template_file": "render",
    "template_kinds": "context",
    "template_uses": "context",
    "transport_from_settings": "transports",
    "validate_address": "message",
}

__all__ = [
    "CalendarAttachment",
    "CalendarMethod",
    "CaseView",
    "ChecklistEntry",
    "ChecklistView",
    "ConsoleTransport",
    "DeadlineView",
    "DeliveryError",
    "EventView",
    "FolderTransport",
    "InvalidAddressError",
    "MailConfigError",
    "MailError",
    "MailKind",
    "MailSettings",
    "Mailbox",
    "MessageError",
    "MimeMessage",
    "OrganisationView",
    "PermanentDeliveryError",
    "RecipientView",
    "RecordingTransport",
    "Refusal",
    "RenderedMail",
    "Renderer",
    "SendOutcome",
    "SendResult",
    "SmtpTransport",
    "TemplateProblem",
    "TemplateRenderError",
    "TemplateUse",
    "TemporaryDeliveryError",
    "TransitionView",
    "Transport",
    "build_context",
    "build_message",
    "deadline_calendar",
    "deadline_ics",
    "deadline_uid",
    "envelope_recipients",
    "event_calendar",
    "event_ics",
    "event_uid",
    "event_view",
    "layout_file",
    "make_message_id",
    "message_filename",
    "one_line",
    "sample_context",
    "sample_organisation",
    "template_file",
    "template_kinds",
    "template_uses",
    "transport_from_settings",
    "validate_address",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
