"""The Users page (admins only): list, add, change role, remove, log out everywhere, and
what each role may do; newsletter.users does it."""

from __future__ import annotations

from flask import Response, request
from werkzeug.wrappers import Response as BaseResponse

from newsletter import users as library
from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.web.admin.core import explain, gettext, render, see_other, sessions
from newsletter.web.auth import current_user, require, session_token

ADD_FIELDS = ("email", "name", "role", "language")  # kept after an error (not the password)


def _page(code: int = 200, problem: str = "", form: dict[str, str] | None = None) -> Response:
    with sessions()() as db:
        shown = [library.view(u) for u in library.list_users(db)]
        live = {u.email: len(library.active_sessions(db, u.email, now=utcnow()))
                for u in shown}
    table = [(name, [role in roles for role in library.ROLES])
             for name, roles in library.PERMISSIONS.items()]
    return render("users", code, users=shown, roles=library.ROLES, live=live,
                  permissions=table, languages=library.LANGUAGES, message="",
                  problem=problem, form=form or {name: "" for name in ADD_FIELDS})


@require("users.manage")
def users_page() -> Response:
    return _page()


def _act(done: str, action: str) -> BaseResponse:
    form = request.form
    try:
        with transaction(sessions()) as db:
            if action == "add":
                library.add_user(db, form.get("email", ""), form.get("password", ""),
                                 form.get("role", ""), name=form.get("name", ""),
                                 language=form.get("language", "en"), now=utcnow())
            elif action == "role":
                library.set_role(db, form.get("email", ""), form.get("role", ""),
                                 keep=session_token())
            else:
                library.remove_user(db, form.get("email", ""))
    except NewsletterError as exc:
        kept = ({name: form.get(name, "")[:320] for name in ADD_FIELDS}
                if action == "add" else None)
        return _page(400, problem=explain(exc), form=kept)
    return see_other(done, "admin.users")


@require("users.manage")
def add() -> BaseResponse:
    return _act(gettext("User added."), "add")


@require("users.manage")
def change_role() -> BaseResponse:
    return _act(gettext("Role changed."), "role")


@require("users.manage")
def remove() -> BaseResponse:
    """The first POST asks (no script needed for a confirmation); the second removes."""
    if request.form.get("confirm") != "yes":
        return render("confirm_remove", email=request.form.get("email", "")[:254])
    return _act(gettext("User removed."), "remove")


@require("users.manage")
def logout() -> BaseResponse:
    """Log a user out everywhere (a lost laptop): every session of theirs is revoked (the
    admin's own one stays when they choose themselves)."""
    email = request.form.get("email", "")
    keep = session_token() if email.strip().lower() == current_user().email else None
    try:
        with transaction(sessions()) as db:
            ended = library.revoke_sessions(db, email, keep=keep)
    except NewsletterError as exc:
        return _page(400, problem=explain(exc))
    return see_other(gettext("%(email)s was logged out everywhere (sessions ended: %(count)d).",
                             email=email.strip()[:254], count=ended), "admin.users")
