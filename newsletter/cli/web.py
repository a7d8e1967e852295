"""`newsletter serve`: the subscriber pages that the links in every email point to, and
the newsroom under /admin."""

from __future__ import annotations

import click

from newsletter.cli.context import App, pass_app, user_errors


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 in a container, behind a reverse proxy).")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on.")
@pass_app
@user_errors
def serve(app: App, host: str, port: int) -> None:
    """Serve one-click unsubscribe, preferences, the web copy of each issue, and the
    newsroom under /admin (log in with an account from `newsletter users add`).

    NEWSLETTER_PUBLIC_BASE_URL must lead here (through your reverse proxy, with TLS) and
    NEWSLETTER_SECRET_KEY must be the key the links were signed with; the development
    key is refused unless the base URL is on localhost.

    \b
    Example:
      NEWSLETTER_PUBLIC_BASE_URL=https://news.example.org newsletter serve --port 8000
    """
    # imported here: every other command starts faster without Flask
    from werkzeug.serving import make_server

    from newsletter.web import create_app, dispose

    wsgi = create_app(app.settings)
    server = make_server(host, port, wsgi, threaded=True)
    click.echo(f"serving on http://{host}:{server.port} "
               f"(emails link to {app.settings.public_base_url}); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        dispose(wsgi)
