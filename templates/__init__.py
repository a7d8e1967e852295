"""Email templates (Jinja2 + MJML); a package so an installed wheel can find them."""
