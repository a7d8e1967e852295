"""Logging in and out, and "Your account": interface language, password, sessions."""

from __future__ import annotations

from flask import g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.users import (
    LANGUAGES,
    LoginThrottled,
    active_sessions,
    authenticate,
    change_password,
    revoke_sessions,
    set_language,
)
from newsletter.web.admin.core import explain, gettext, render, see_other, sessions
from newsletter.web.auth import current_user, log_in, log_out, require, session_token

LANGUAGE_NAMES = {"en": "English", "es": "Español"}


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a page of ours, never another site."""
    if target and target.startswith("/admin/") and not target.startswith("/admin//") \
            and "\\" not in target and not any(ord(c) < 32 for c in target):
        return target
    return url_for("admin.dashboard")


def login() -> BaseResponse:
    if g.user is not None and request.method == "GET":
        return redirect(url_for("admin.dashboard"))
    target = request.values.get("next", "")
    if request.method == "GET":
        return render("login", next=target, email="", problem="")
    email = request.form.get("email", "")[:320]
    password = request.form.get("password", "")
    client = request.remote_addr or "unknown"
    try:
        with transaction(sessions()) as db:  # authenticate serialises the throttle's count
            user = authenticate(db, email, password, client, now=utcnow())
            if user is not None:
                log_in(db, user)
    except LoginThrottled:
        return render("login", 429, next=target, email=email, problem=gettext(
            "Too many failed logins. Try again in 15 minutes."))
    if user is None:
        return render("login", 401, next=target, email=email,
                      problem=gettext("Wrong email or password."))
    return redirect(safe_next(target), 303)


@require("account.change")
def logout() -> BaseResponse:
    with transaction(sessions()) as db:
        log_out(db)
    return redirect(url_for("admin.login"), 303)


@require("account.change")
def end_other_sessions() -> BaseResponse:
    """"Log out everywhere else": every session of this user but this one ends."""
    with transaction(sessions()) as db:
        ended = revoke_sessions(db, current_user().email, keep=session_token())
    return see_other(gettext("Other sessions logged out: %(count)d.", count=ended),
                     "admin.account")


def _sessions() -> list[object]:
    with sessions()() as db:
        return list(active_sessions(db, current_user().email, now=utcnow(),
                                    current=session_token()))


@require("account.change")
def account() -> BaseResponse:
    user = current_user()
    problem, code = "", 200
    if request.method == "POST":
        try:
            with transaction(sessions()) as db:
                if request.form.get("action") == "password":
                    if request.form.get("new", "") != request.form.get("repeat", ""):
                        raise NewsletterError(gettext("The new passwords differ."))
                    change_password(db, user.email, request.form.get("current", ""),
                                    request.form.get("new", ""), keep=session_token())
                    message = gettext("Your password was changed.")
                else:
                    changed = set_language(db, user.email, request.form.get("language", ""))
                    user.language = changed.language  # the notice in the new language
                    message = gettext("Saved.")
        except NewsletterError as exc:
            problem, code = explain(exc), 400
        else:
            return see_other(message, "admin.account")
    return render("account", code, message="", problem=problem,
                  languages=[(c, LANGUAGE_NAMES[c]) for c in LANGUAGES],
                  user_sessions=_sessions())
