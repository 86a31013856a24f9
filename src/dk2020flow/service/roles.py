"""The roles a web user can hold.

A staff account holds roles its programme's workflow names (``service.accounts
.Accounts.staff_roles``): with them it acts on cases as the workflow allows; ``admin``
manages accounts; ``read_only`` sees everything and changes nothing. Any staff account
sees the console; one with a workflow role may act. A user's roles come from their
account (``users`` table), never from the request.
"""

from __future__ import annotations

import re

ADMIN = "admin"
READ_ONLY = "read_only"
ACCOUNT_ROLES = (ADMIN, READ_ONLY)
"""The roles every programme has besides its workflow's."""

OPERATIONS_ROLES = frozenset({"secretariat", ADMIN})
"""May retry mail and migrate cases between workflow versions (the Operations page):
``admin``, and a workflow role named ``secretariat`` where a programme has one."""


def acting_roles(roles: tuple[str, ...] | list[str] | frozenset[str]) -> list[str]:
    """The roles of ``roles`` that may act on cases (all but ``admin`` and ``read_only``)."""
    return [role for role in roles if role not in (ADMIN, READ_ONLY)]


_ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def is_role_name(role: str) -> bool:
    """A role's name as a workflow file writes it (lower-case letters, digits and _)."""
    return bool(_ROLE_NAME.match(role))
