"""Naming a variant: one spelling everywhere, the one preview files use (`es-CR`)."""

from __future__ import annotations

from collections.abc import Sequence

from newsletter.render import RenderError, Variant

REGIONAL = "regional"


class UnknownVariant(RenderError):
    """A variant named in a way that matches no language the issue is made in."""


def parse_variant(text: str, languages: Sequence[str]) -> Variant:
    """A variant from its label (`es-CR`, `en-regional`, `es`); `es:CR` is accepted too.

    `languages` are the editions made (settings.languages), matched case-insensitively.
    """
    raw = text.strip().replace(":", "-").replace("_", "-")
    by_key = {lang.lower(): lang for lang in languages}
    if raw.lower() in by_key:
        return Variant(by_key[raw.lower()])
    head, _, tail = raw.rpartition("-")
    if head.lower() in by_key and (tail.lower() == REGIONAL
                                   or (len(tail) == 2 and tail.isascii() and tail.isalpha())):
        return Variant(by_key[head.lower()], "" if tail.lower() == REGIONAL else tail.upper())
    raise UnknownVariant(
        f"{text!r} is not a variant: use LANGUAGE or LANGUAGE-COUNTRY, as the preview files "
        f"are named (e.g. es-CR or en-regional), with a language among {', '.join(languages)}"
    )
