"""The newsroom: the communications team's pages under /admin.

One module per screen (`dashboard`, `users`, `account`); each view calls the library the
CLI calls. Every page but the login needs a logged-in user, read again from the database
on each request; every unsafe request needs the session's CSRF token (`auth.check_csrf`),
checked before anything else. Every view but the login is wrapped in
`auth.require(permission)` (`users.PERMISSIONS` says which roles hold it).
"""

from __future__ import annotations

from flask import Blueprint, g, redirect, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from newsletter.db import transaction
from newsletter.web.admin import (
    account,
    core,
    dashboard,
    feeds,
    issues,
    items,
    sending,
    series,
    subscribers,
    users,
)
from newsletter.web.auth import check_csrf, load_user

PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.stylesheet"})

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


@blueprint.before_request
def _guard() -> BaseResponse | None:
    if request.endpoint == "admin.stylesheet":
        return None
    check_csrf()
    with transaction(core.sessions()) as db:  # notes when the session was last seen
        user = load_user(db)
        if user is not None:
            db.expunge(user)
    g.user = user
    if user is None and request.endpoint not in PUBLIC_ENDPOINTS:
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")
                                if request.method == "GET" else None))
    return None


blueprint.after_request(core.security_headers)
blueprint.register_error_handler(HTTPException, core.error_page)

blueprint.add_url_rule("/static/newsroom.css", "stylesheet", core.stylesheet)
blueprint.add_url_rule("/login", "login", account.login, methods=["GET", "POST"])
blueprint.add_url_rule("/logout", "logout", account.logout, methods=["POST"])
blueprint.add_url_rule("/account", "account", account.account, methods=["GET", "POST"])
blueprint.add_url_rule("/account/sessions", "account_sessions", account.end_other_sessions,
                       methods=["POST"])
blueprint.add_url_rule("/", "dashboard", dashboard.dashboard)
blueprint.add_url_rule("/users", "users", users.users_page, methods=["GET"])
blueprint.add_url_rule("/users/add", "users_add", users.add, methods=["POST"])
blueprint.add_url_rule("/users/role", "users_role", users.change_role, methods=["POST"])
blueprint.add_url_rule("/users/remove", "users_remove", users.remove, methods=["POST"])
blueprint.add_url_rule("/users/logout", "users_logout", users.logout, methods=["POST"])
blueprint.add_url_rule("/items", "items", items.items_page, methods=["GET"])
blueprint.add_url_rule("/items/upload", "items_upload", items.upload, methods=["POST"])
blueprint.add_url_rule("/items/<raw_id>", "item", items.item_page, methods=["GET"])
blueprint.add_url_rule("/items/<raw_id>/edit", "item_edit", items.edit, methods=["POST"])
blueprint.add_url_rule("/items/<raw_id>/translate", "item_translate", items.translate,
                       methods=["POST"])
blueprint.add_url_rule("/items/<raw_id>/delete", "item_delete", items.delete,
                       methods=["POST"])

# sending an issue (sending.py): review, schedule, send, progress, steering, test-send
_ISSUE = "/issues/<slug>"
blueprint.add_url_rule("/static/sending.js", "sending_script", sending.script)
blueprint.add_url_rule(f"{_ISSUE}/review", "sending_review", sending.review,
                       methods=["GET", "POST"])
blueprint.add_url_rule(f"{_ISSUE}/schedule", "sending_schedule", sending.schedule,
                       methods=["GET", "POST"])
blueprint.add_url_rule(f"{_ISSUE}/send", "sending_send", sending.send, methods=["GET", "POST"])
blueprint.add_url_rule(f"{_ISSUE}/progress", "sending_progress", sending.progress)
blueprint.add_url_rule(f"{_ISSUE}/progress.json", "sending_progress_json",
                       sending.progress_json)
blueprint.add_url_rule(f"{_ISSUE}/control", "sending_control", sending.steer, methods=["POST"])
blueprint.add_url_rule(f"{_ISSUE}/test-send", "sending_test", sending.test_send,
                       methods=["GET", "POST"])
# series, feeds and the calendar (series.py, feeds.py)
blueprint.add_url_rule("/series", "series", series.series_page, methods=["GET"])
blueprint.add_url_rule("/series/create", "series_create", series.create, methods=["POST"])
blueprint.add_url_rule("/series/<slug>", "series_one", series.series_one, methods=["GET"])
blueprint.add_url_rule("/series/<slug>/pause", "series_pause", series.pause, methods=["POST"])
blueprint.add_url_rule("/series/<slug>/resume", "series_resume", series.resume,
                       methods=["POST"])
blueprint.add_url_rule("/series/<slug>/delete", "series_delete", series.delete,
                       methods=["POST"])
blueprint.add_url_rule("/series/<slug>/build", "series_build", series.build, methods=["POST"])
blueprint.add_url_rule("/series/<slug>/edit", "series_edit", series.edit, methods=["POST"])
blueprint.add_url_rule("/calendar", "calendar", series.calendar_page, methods=["GET"])
blueprint.add_url_rule("/feeds", "feeds", feeds.feeds_page, methods=["GET"])
blueprint.add_url_rule("/feeds/add", "feeds_add", feeds.add, methods=["POST"])
blueprint.add_url_rule("/feeds/<name>", "feed", feeds.feed, methods=["GET"])
blueprint.add_url_rule("/feeds/<name>/fetch", "feed_fetch", feeds.fetch, methods=["POST"])
blueprint.add_url_rule("/feeds/<name>/edit", "feed_edit", feeds.edit, methods=["POST"])
blueprint.add_url_rule("/feeds/<name>/remove", "feed_remove", feeds.remove, methods=["POST"])
blueprint.add_url_rule("/subscribers", "subscribers", subscribers.subscribers_page,
                       methods=["GET"])
blueprint.add_url_rule("/subscribers/export.csv", "subscribers_export", subscribers.export,
                       methods=["GET"])
blueprint.add_url_rule("/subscribers/<raw_id>", "subscriber", subscribers.person_page,
                       methods=["GET"])
blueprint.add_url_rule("/subscribers/<raw_id>/unsubscribe", "subscriber_unsubscribe",
                       subscribers.unsubscribe_person, methods=["POST"])
blueprint.add_url_rule("/subscribers/<raw_id>/suppress", "subscriber_suppress",
                       subscribers.suppress_person, methods=["POST"])

blueprint.add_url_rule("/issues", "issues", issues.issues_page)
blueprint.add_url_rule("/issues/create", "issues_create", issues.create, methods=["POST"])
blueprint.add_url_rule("/issues/build", "issues_build", issues.build, methods=["POST"])
blueprint.add_url_rule("/issues/<slug>", "issue", issues.issue_page)
blueprint.add_url_rule("/issues/<slug>/items", "issue_items", issues.change_items,
                       methods=["POST"])
blueprint.add_url_rule("/issues/<slug>/edit", "issue_edit", issues.edit_texts, methods=["POST"])
blueprint.add_url_rule("/issues/<slug>/audience", "issue_audience", issues.edit_audience,
                       methods=["POST"])
blueprint.add_url_rule("/issues/<slug>/preview", "issue_preview", issues.preview)
blueprint.add_url_rule("/issues/<slug>/preview/<label>.html", "issue_variant",
                       issues.variant_html)
