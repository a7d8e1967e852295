"""Logging in and out, and "Your account": interface language and password."""

from __future__ import annotations

import threading

from flask import g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.users import LANGUAGES, LoginThrottled, authenticate, change_password, set_language
from newsletter.web.admin.core import explain, gettext, render, see_other, sessions
from newsletter.web.auth import current_user, log_in, log_out, refresh_login

LANGUAGE_NAMES = {"en": "English", "es": "Español"}
# One login checked at a time, its failure committed before the next is counted: else
# guesses sent together are all checked before any is counted and outrun the throttle.
_LOGINS = threading.Lock()


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
        with _LOGINS, transaction(sessions()) as db:
            user = authenticate(db, email, password, client, now=utcnow())
            if user is not None:
                log_in(user)
    except LoginThrottled:
        return render("login", 429, next=target, email=email, problem=gettext(
            "Too many failed logins. Try again in 15 minutes."))
    if user is None:
        return render("login", 401, next=target, email=email,
                      problem=gettext("Wrong email or password."))
    return redirect(safe_next(target), 303)


def logout() -> BaseResponse:
    log_out()
    return redirect(url_for("admin.login"), 303)


def account() -> BaseResponse:
    user = current_user()
    problem, code = "", 200
    if request.method == "POST":
        try:
            with transaction(sessions()) as db:
                if request.form.get("action") == "password":
                    if request.form.get("new", "") != request.form.get("repeat", ""):
                        raise NewsletterError(gettext("The new passwords differ."))
                    changed = change_password(db, user.email, request.form.get("current", ""),
                                              request.form.get("new", ""))
                    refresh_login(changed)
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
                  languages=[(c, LANGUAGE_NAMES[c]) for c in LANGUAGES])
