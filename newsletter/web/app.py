"""The one WSGI app: the subscriber pages (`subscriber.py`), the public pages
(`public.py`) and the newsroom under /admin (`admin/`), sharing one engine, one
sessionmaker and one settings object."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from newsletter.db import ensure_schema, make_engine, session_factory
from newsletter.settings import Settings, load_settings
from newsletter.web import admin, public, subscriber
from newsletter.web.auth import configure_sessions
from newsletter.web.subscriber import EXTENSION, MAX_BODY_BYTES, Site, check_settings


def create_app(settings: Settings | None = None) -> Flask:
    """The WSGI app, with one engine and sessionmaker for all requests.

    Raises SettingsError for NEWSLETTER_* variables that do not load, WebConfigError for
    settings that must not face the public (see `check_settings`), before touching the
    database.
    """
    settings = settings or load_settings()
    check_settings(settings)
    engine = make_engine(settings.resolved_database_url)
    ensure_schema(engine)
    site = Site(settings, engine, session_factory(engine))
    app = Flask(__name__, static_folder=None, template_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    configure_sessions(app, settings.secret_key, settings.public_base_url)
    app.extensions[EXTENSION] = site
    subscriber.register(app, site)
    public.register_public(app, site)  # sign-up, archive, Atom: no login
    app.register_blueprint(admin.blueprint)
    if settings.trusted_proxies:  # the client's address, as the proxies in front saw it
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies)
    return app


def dispose(app: Flask) -> None:
    """Close the app's database connections (tests, and a clean shutdown)."""
    site = app.extensions[EXTENSION]
    assert isinstance(site, Site)
    site.engine.dispose()
