"""The one base error; specific errors live beside the code that raises them."""


class NewsletterError(Exception):
    """An error a user can act on: its message says what went wrong and what to do."""
