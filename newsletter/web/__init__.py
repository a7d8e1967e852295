"""The web: the subscriber pages (`subscriber.py`) and the newsroom under /admin
(`admin/`, `auth.py`), one app built by `app.create_app`."""

from newsletter.web.app import create_app, dispose
from newsletter.web.subscriber import WebConfigError

__all__ = ["WebConfigError", "create_app", "dispose"]
