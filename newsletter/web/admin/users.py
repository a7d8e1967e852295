"""The Users page (admins only): list, add, change role, remove; newsletter.users does it."""

from __future__ import annotations

from flask import Response, request
from werkzeug.wrappers import Response as BaseResponse

from newsletter import users as library
from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.web.admin.core import explain, gettext, render, see_other, sessions
from newsletter.web.auth import require_role

ADD_FIELDS = ("email", "name", "role", "language")  # kept after an error (not the password)


def _page(code: int = 200, problem: str = "", form: dict[str, str] | None = None) -> Response:
    with sessions()() as db:
        shown = [library.view(u) for u in library.list_users(db)]
    return render("users", code, users=shown, roles=library.ROLES,
                  languages=library.LANGUAGES, message="", problem=problem,
                  form=form or {name: "" for name in ADD_FIELDS})


@require_role("admin")
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
                library.set_role(db, form.get("email", ""), form.get("role", ""))
            else:
                library.remove_user(db, form.get("email", ""))
    except NewsletterError as exc:
        kept = ({name: form.get(name, "")[:320] for name in ADD_FIELDS}
                if action == "add" else None)
        return _page(400, problem=explain(exc), form=kept)
    return see_other(done, "admin.users")


@require_role("admin")
def add() -> BaseResponse:
    return _act(gettext("User added."), "add")


@require_role("admin")
def change_role() -> BaseResponse:
    return _act(gettext("Role changed."), "role")


@require_role("admin")
def remove() -> BaseResponse:
    """The first POST asks (no script needed for a confirmation); the second removes."""
    if request.form.get("confirm") != "yes":
        return render("confirm_remove", email=request.form.get("email", "")[:254])
    return _act(gettext("User removed."), "remove")
