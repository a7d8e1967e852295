"""The Users page (admins only): list, add, change role, remove; newsletter.users does it."""

from __future__ import annotations

from flask import Response, request

from newsletter import users as library
from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.web.admin.core import gettext, render, sessions
from newsletter.web.auth import require_role


def _page(code: int = 200, message: str = "", problem: str = "") -> Response:
    with sessions()() as db:
        shown = [library.view(u) for u in library.list_users(db)]
    return render("users", code, users=shown, roles=library.ROLES,
                  languages=library.LANGUAGES, message=message, problem=problem)


@require_role("admin")
def users_page() -> Response:
    return _page()


def _act(done: str, action: str) -> Response:
    form = request.form
    try:
        with transaction(sessions()) as db:
            if action == "add":
                library.add_user(db, form.get("email", ""), form.get("password", ""),
                                 form.get("role", ""), name=form.get("name", ""),
                                 language=form.get("language", "en"), now=utcnow())
            elif action == "role":
                library.set_role(db, form.get("email", ""), form.get("role", ""))
            else:
                library.remove_user(db, form.get("email", ""))
    except NewsletterError as exc:
        return _page(400, problem=str(exc))
    return _page(message=done)


@require_role("admin")
def add() -> Response:
    return _act(gettext("User added."), "add")


@require_role("admin")
def change_role() -> Response:
    return _act(gettext("Role changed."), "role")


@require_role("admin")
def remove() -> Response:
    """The first POST asks (no script needed for a confirmation); the second removes."""
    if request.form.get("confirm") != "yes":
        return render("confirm_remove", email=request.form.get("email", "")[:254])
    return _act(gettext("User removed."), "remove")
