"""Every ISO 3166-1 country, by code or by name in English, Spanish or French."""

from __future__ import annotations

import gettext
import re
import unicodedata
from functools import lru_cache

import pycountry

from newsletter import geo


def fold(text: str) -> str:
    """Compare names without accents, case or punctuation: 'México' == 'mexico'."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", bare.casefold()).strip()


@lru_cache(maxsize=1)
def _index() -> dict[str, str]:
    translations = [
        gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang], fallback=True)
        for lang in ("es", "fr")
    ]
    index: dict[str, str] = {}
    for country in pycountry.countries:
        code = country.alpha_2
        names = {country.alpha_3, country.name}
        for attr in ("official_name", "common_name"):
            if hasattr(country, attr):
                names.add(getattr(country, attr))
        for t in translations:
            names.update(t.gettext(n) for n in list(names))
        for name in names:
            index.setdefault(fold(name), code)
    return index


def country_code(value: str) -> str | None:
    """An alpha-2 code for a code or name ('cr', 'CRI', 'Costa Rica', 'Belice'), else None."""
    value = value.strip()
    if not value:
        return None
    if len(value) == 2 and value.isalpha():
        found = pycountry.countries.get(alpha_2=value.upper())
        return str(found.alpha_2) if found else None
    regional = geo.country_code(value)  # the region's own spellings and aliases first
    if regional:
        return regional
    return _index().get(fold(value))
