"""Email templates (Jinja2 + MJML) and their catalogs; installed as `newsletter.templates`
(pyproject.toml maps this folder there), never as a top-level `templates` package."""
