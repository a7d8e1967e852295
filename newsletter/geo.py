"""Country knowledge for the region the newsletter covers: names, cities and demonyms.

Pure data and functions, no database: ingest uses it to tag items with ISO 3166-1
alpha-2 codes, and templates use it to print a country's name in the reader's language.
Everything is driven by the one ``COUNTRIES`` table below; add a row to add a country.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    """One row of the table: how texts and people may refer to a country."""

    code: str  # ISO 3166-1 alpha-2
    en: str
    es: str
    fr: str
    aliases: tuple[str, ...] = ()  # other names for the country itself
    places: tuple[str, ...] = ()  # capital, main cities and regions
    demonyms: tuple[str, ...] = ()  # base forms; plurals and Spanish feminines are derived


COUNTRIES: tuple[Country, ...] = (
    Country("BZ", "Belize", "Belice", "Belize",
            places=("Belmopan", "Belize City", "Corozal", "San Ignacio", "Orange Walk"),
            demonyms=("Belizean", "beliceño")),
    Country("CR", "Costa Rica", "Costa Rica", "Costa Rica",
            places=("San José", "Alajuela", "Upala", "Los Chiles", "Puerto Limón"),
            demonyms=("Costa Rican", "costarricense")),
    Country("CU", "Cuba", "Cuba", "Cuba",
            places=("Havana", "La Habana", "Santiago de Cuba"),
            demonyms=("Cuban", "cubano", "cubain")),
    Country("DO", "Dominican Republic", "República Dominicana", "République dominicaine",
            places=("Santo Domingo", "Santiago de los Caballeros", "Dajabón"),
            demonyms=("Dominican", "dominicano", "dominicain")),
    Country("SV", "El Salvador", "El Salvador", "Salvador",
            places=("San Salvador", "Ahuachapán", "Usulután"),
            demonyms=("Salvadoran", "Salvadorean", "salvadoreño")),
    Country("GT", "Guatemala", "Guatemala", "Guatemala",
            places=("Guatemala City", "Ciudad de Guatemala", "Quetzaltenango",
                    "Huehuetenango", "Tecún Umán", "Petén"),
            demonyms=("Guatemalan", "guatemalteco")),
    Country("HT", "Haiti", "Haití", "Haïti",
            places=("Port-au-Prince", "Cap-Haïtien", "Ouanaminthe"),
            demonyms=("Haitian", "haitiano", "haïtien")),
    Country("HN", "Honduras", "Honduras", "Honduras",
            places=("Tegucigalpa", "San Pedro Sula", "Choluteca", "La Ceiba"),
            demonyms=("Honduran", "hondureño")),
    Country("JM", "Jamaica", "Jamaica", "Jamaïque",
            places=("Kingston", "Montego Bay"),
            demonyms=("Jamaican", "jamaiquino", "jamaïcain")),
    Country("MX", "Mexico", "México", "Mexique",
            places=("Mexico City", "Ciudad de México", "Quintana Roo", "Chetumal", "Chiapas",
                    "Tapachula", "Tijuana", "Ciudad Juárez", "Monterrey", "Tabasco"),
            demonyms=("Mexican", "mexicano", "mexicain")),
    Country("NI", "Nicaragua", "Nicaragua", "Nicaragua",
            places=("Managua", "Chinandega", "Estelí"),
            demonyms=("Nicaraguan", "nicaragüense", "nicaraguayen")),
    Country("PA", "Panama", "Panamá", "Panama",
            places=("Panama City", "Ciudad de Panamá", "Darién"),
            demonyms=("Panamanian", "panameño", "panaméen")),
    Country("US", "United States", "Estados Unidos", "États-Unis",
            aliases=("United States of America", "U.S.A.", "EE. UU.", "EEUU"),
            places=("Washington, D.C.", "New York", "Miami", "Houston", "Los Angeles"),
            demonyms=("estadounidense",)),
    Country("CA", "Canada", "Canadá", "Canada",
            places=("Ottawa", "Toronto", "Montreal", "Vancouver"),
            demonyms=("Canadian", "canadiense", "canadien")),
    Country("CO", "Colombia", "Colombia", "Colombie",
            places=("Bogotá", "Medellín", "Cúcuta"),
            demonyms=("Colombian", "colombiano", "colombien")),
    Country("VE", "Venezuela", "Venezuela", "Venezuela",
            places=("Caracas", "Maracaibo"),
            demonyms=("Venezuelan", "venezolano", "vénézuélien")),
    # "Spanish", "French" and "English" are languages far more often than people: left out.
    Country("ES", "Spain", "España", "Espagne", places=("Madrid", "Barcelona")),
    Country("FR", "France", "Francia", "France", places=("Paris",)),
    Country("GB", "United Kingdom", "Reino Unido", "Royaume-Uni",
            aliases=("UK", "Great Britain", "Britain", "Gran Bretaña"), places=("London",),
            demonyms=("British", "británico")),
    Country("AR", "Argentina", "Argentina", "Argentine"),
    Country("BR", "Brazil", "Brasil", "Brésil"),
    Country("CL", "Chile", "Chile", "Chili"),
    Country("EC", "Ecuador", "Ecuador", "Équateur"),
    Country("PE", "Peru", "Perú", "Pérou"),
    Country("BS", "Bahamas", "Bahamas", "Bahamas"),
    Country("TT", "Trinidad and Tobago", "Trinidad y Tobago", "Trinité-et-Tobago"),
    Country("GY", "Guyana", "Guyana", "Guyana"),
    Country("CH", "Switzerland", "Suiza", "Suisse", places=("Geneva", "Ginebra", "Genève")),
)

# Regions name no country: they are matched (and then ignored) so that no word inside them
# is ever read as a country, whatever words the table gains later.
REGIONS: tuple[str, ...] = (
    "Central America", "Central American", "Centroamérica", "centroamericano",
    "América Central", "Latin America", "Latin American", "Latinoamérica", "latinoamericano",
    "North America", "North American", "South America", "South American", "Norteamérica",
)

# Names accepted by country_code() but never searched for in text ("usa" is Spanish for "uses").
_LOOKUP_ONLY: dict[str, str] = {"usa": "US"}

_BY_CODE: dict[str, Country] = {c.code: c for c in COUNTRIES}


def _fold(text: str) -> str:
    """Casefold and drop accents, so "México", "MEXICO" and "mexico" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _inflections(demonym: str) -> tuple[str, ...]:
    """The forms a demonym takes in running text: plural, and Spanish/French feminine."""
    if demonym.endswith("o"):  # hondureño -> hondureña, hondureños, hondureñas
        return tuple(demonym[:-1] + end for end in ("o", "a", "os", "as"))
    if demonym.endswith(("ien", "éen")):  # haïtien -> haïtienne, haïtiens
        return tuple(demonym + end for end in ("", "s", "ne", "nes"))
    if demonym.endswith("ain"):  # mexicain -> mexicaine, mexicains
        return tuple(demonym + end for end in ("", "s", "e", "es"))
    return (demonym, demonym + "s")


def _names(country: Country) -> tuple[str, ...]:
    """The names that mean the country itself (not its cities or people)."""
    return (country.en, country.es, country.fr, *country.aliases)


_NAME_TO_CODE: dict[str, str] = {
    **_LOOKUP_ONLY,
    **{_fold(name): c.code for c in COUNTRIES for name in _names(c)},
}

# Every phrase detection looks for, folded, mapped to its code (None for regions).
_PHRASES: dict[str, str | None] = {
    _fold(form): None for region in REGIONS for form in _inflections(region)
}
for _c in COUNTRIES:
    _forms = [*_names(_c), *_c.places, *(f for d in _c.demonyms for f in _inflections(d))]
    for _form in _forms:
        _PHRASES.setdefault(_fold(_form), _c.code)

# Longest first, so "Dominican Republic" wins over "Dominican" and "Central America"
# over "America"; the look-arounds make a word boundary that also works next to "-" or ".".
_PATTERN = re.compile(
    r"(?<![\w])(?:"
    + "|".join(re.escape(p) for p in sorted(_PHRASES, key=len, reverse=True))
    + r")(?![\w])"
)


def country_code(name_or_code: str) -> str | None:
    """The alpha-2 code for a code (any case) or a country name in English, Spanish or French.

    Names match without regard to case or accents; cities and demonyms do not count here,
    because a user naming a country should name the country.
    """
    value = name_or_code.strip()
    if len(value) == 2 and value.upper() in _BY_CODE:
        return value.upper()
    folded = _fold(value)
    if folded.startswith("the "):
        folded = folded[4:]
    return _NAME_TO_CODE.get(folded)


def country_name(code: str, language: str = "en") -> str:
    """The country's name in "en", "es" or "fr" (other languages get English; unknown codes
    come back unchanged, so a template never breaks on a code this table lacks)."""
    country = _BY_CODE.get(code.strip().upper())
    if country is None:
        return code
    lang = language.strip().lower()[:2]
    if lang == "es":
        return country.es
    if lang == "fr":
        return country.fr
    return country.en


def _codes_in(text: str) -> list[str]:
    """Codes in order of first mention."""
    found: list[str] = []
    for match in _PATTERN.finditer(_fold(text)):
        code = _PHRASES[match.group(0)]
        if code is not None and code not in found:
            found.append(code)
    return found


def detect_countries(place: str | None, text: str) -> tuple[str, ...]:
    """Countries an item is about: those in its dateline place first, then by first mention."""
    codes = _codes_in(place) if place else []
    for code in _codes_in(text):
        if code not in codes:
            codes.append(code)
    return tuple(codes)
