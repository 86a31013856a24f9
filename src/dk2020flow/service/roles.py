"""The roles a web user can hold.

The workflow's staff roles (``secretariat``, ``follow_up``, ``approver``,
``regional_advisor`` in DK2020) act on cases as the workflow allows them; ``admin``
manages accounts; ``read_only`` sees everything and changes nothing. A user's roles
come from their account (``users`` table), never from the request.
"""

from __future__ import annotations

ADMIN = "admin"
READ_ONLY = "read_only"
WORKFLOW_STAFF_ROLES = ("secretariat", "follow_up", "approver", "regional_advisor")
STAFF_ROLES = (*WORKFLOW_STAFF_ROLES, ADMIN, READ_ONLY)
"""Every role a staff account may hold."""

OPERATIONS_ROLES = frozenset({"secretariat", ADMIN})
"""May retry mail and migrate cases between workflow versions (the Operations page)."""


def acting_roles(roles: tuple[str, ...] | list[str] | frozenset[str]) -> list[str]:
    """The roles of ``roles`` that may act on cases (all but ``admin`` and ``read_only``)."""
    return [role for role in roles if role not in (ADMIN, READ_ONLY)]
