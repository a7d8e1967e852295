"""Reading news items from files: the plain-text format, JSON."""
