"""The web: the subscriber pages today (`subscriber.py`); the newsroom grows beside them
(issue 10: `app.py`, `auth.py`, `admin/`, `public.py`)."""

from newsletter.web.subscriber import WebConfigError, create_app, dispose

__all__ = ["WebConfigError", "create_app", "dispose"]
