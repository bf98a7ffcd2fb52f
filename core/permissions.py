"""Who may do what: the one table every page and service checks (never only the menu)."""

from __future__ import annotations

from db.models import Role

# Each page's id and the roles that may open it, in menu order: a role's first page is where it lands after
# signing in (the Dashboard for admins, managers and viewers; What needs doing for staff).
PAGES: dict[str, frozenset[Role]] = {
    "dashboard": frozenset({Role.ADMIN, Role.MANAGER, Role.VIEWER}),
    "home": frozenset(Role),
    "intake": frozenset({Role.ADMIN, Role.MANAGER, Role.STAFF}),
    "queue": frozenset({Role.ADMIN, Role.MANAGER, Role.STAFF}),
    "lead": frozenset({Role.ADMIN, Role.MANAGER, Role.STAFF}),
    "followups": frozenset({Role.ADMIN, Role.MANAGER, Role.STAFF}),
    "imports": frozenset({Role.ADMIN, Role.MANAGER}),
    "learned": frozenset({Role.ADMIN, Role.MANAGER}),
    "insights": frozenset({Role.ADMIN, Role.MANAGER, Role.VIEWER}),
    "ai_usage": frozenset({Role.ADMIN}),
    "admin": frozenset({Role.ADMIN}),
    "account": frozenset(Role),
}

ACTIONS: dict[str, frozenset[Role]] = {
    "lead.create": frozenset({Role.ADMIN, Role.MANAGER, Role.STAFF}),
    "lead.update": frozenset({Role.ADMIN, Role.MANAGER, Role.STAFF}),
    "lead.view_all": frozenset({Role.ADMIN, Role.MANAGER, Role.VIEWER}),
    "lead.bulk": frozenset({Role.ADMIN, Role.MANAGER}),
    "lead.assign_any": frozenset({Role.ADMIN, Role.MANAGER}),
    "lead.delete": frozenset({Role.ADMIN, Role.MANAGER}),
    "lead.export": frozenset({Role.ADMIN, Role.MANAGER}),
    "lead.reanalyze": frozenset({Role.ADMIN, Role.MANAGER, Role.STAFF}),
    # Merging deletes one lead for good, and "not a duplicate" is final: the people who may delete leads decide.
    "lead.merge": frozenset({Role.ADMIN, Role.MANAGER}),
    "followups.manage": frozenset({Role.ADMIN, Role.MANAGER}),
    "followups.work": frozenset({Role.ADMIN, Role.MANAGER, Role.STAFF}),
    "insights.generate": frozenset({Role.ADMIN, Role.MANAGER}),
    "admin.users": frozenset({Role.ADMIN}),
    "admin.api_keys": frozenset({Role.ADMIN}),
    "admin.settings": frozenset({Role.ADMIN}),
}


def may_open(role: Role | str, page: str) -> bool:
    """True when `role` may open `page`."""
    return Role(role) in PAGES.get(page, frozenset())


def may(role: Role | str, action: str) -> bool:
    """True when `role` may do `action`."""
    return Role(role) in ACTIONS.get(action, frozenset())


def pages_for(role: Role | str) -> list[str]:
    """The pages a role's menu lists, in menu order."""
    return [page for page, roles in PAGES.items() if Role(role) in roles]
