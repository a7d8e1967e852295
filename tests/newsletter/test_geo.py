"""Country lookups and detection: the tags every imported item gets."""

from __future__ import annotations

import pytest

from newsletter import geo

REQUIRED = (
    "BZ", "CR", "CU", "DO", "SV", "GT", "HT", "HN", "JM", "MX", "NI", "PA",
    "US", "CA", "CO", "VE", "ES", "FR", "GB",
)


def test_table_has_every_required_country_once() -> None:
    codes = [c.code for c in geo.COUNTRIES]
    assert len(codes) == len(set(codes))
    assert set(REQUIRED) <= set(codes)
    assert all(len(code) == 2 and code.isupper() for code in codes)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("MX", "MX"),
        ("mx", "MX"),
        (" cr ", "CR"),
        ("México", "MX"),
        ("Mexico", "MX"),
        ("MEXICO", "MX"),
        ("Mexique", "MX"),
        ("Belice", "BZ"),
        ("costa rica", "CR"),
        ("República Dominicana", "DO"),
        ("Republica Dominicana", "DO"),
        ("the Dominican Republic", "DO"),
        ("Haïti", "HT"),
        ("Panamá", "PA"),
        ("Estados Unidos", "US"),
        ("USA", "US"),
        ("Reino Unido", "GB"),
        ("Royaume-Uni", "GB"),
        ("Atlantis", None),
        ("", None),
        ("XX", None),
        ("Tegucigalpa", None),  # a city names no country here
        ("Central America", None),
    ],
)
def test_country_code(value: str, expected: str | None) -> None:
    assert geo.country_code(value) == expected


@pytest.mark.parametrize(
    ("code", "language", "expected"),
    [
        ("MX", "en", "Mexico"),
        ("MX", "es", "México"),
        ("MX", "fr", "Mexique"),
        ("mx", "es-MX", "México"),
        ("DO", "fr", "République dominicaine"),
        ("BZ", "es", "Belice"),
        ("HT", "de", "Haiti"),  # unknown language: English
        ("ZZ", "es", "ZZ"),  # unknown code: the code itself
    ],
)
def test_country_name(code: str, language: str, expected: str) -> None:
    assert geo.country_name(code, language) == expected


def test_country_name_defaults_to_english() -> None:
    assert geo.country_name("CR") == "Costa Rica"
    assert geo.country_name("GB") == "United Kingdom"


@pytest.mark.parametrize("language", ["en", "es", "fr"])
def test_every_name_maps_back_to_its_code(language: str) -> None:
    for country in geo.COUNTRIES:
        assert geo.country_code(geo.country_name(country.code, language)) == country.code


@pytest.mark.parametrize(
    ("place", "text", "expected"),
    [
        (None, "Nicaraguan migrants who entered Costa Rica", ("NI", "CR")),
        ("San José", "Nicaraguan migrants in the country", ("CR", "NI")),
        ("Quintana Roo, Mexico", "cross-border meeting with Belize", ("MX", "BZ")),
        ("Guatemala City", "a regional workshop", ("GT",)),
        (None, "met in Ciudad de Guatemala", ("GT",)),
        (None, "the Dominican Republic and Dominican officials", ("DO",)),
        (None, "Dominican workers", ("DO",)),
        (None, "Central America bolsters protocols", ()),
        (None, "los países centroamericanos y América Central", ()),
        (None, "Central American Policy on disaster risk", ()),
        (None, "MÉXICO y Haiti", ("MX", "HT")),
        (None, "mujeres hondureñas y jóvenes salvadoreños", ("HN", "SV")),
        (None, "Nicaraguans and Panamanians", ("NI", "PA")),
        (None, "flights from Port-au-Prince and La Habana", ("HT", "CU")),
        (None, "Tegucigalpa, San Pedro Sula, Tapachula, Managua", ("HN", "MX", "NI")),
        (None, "Kingston and Santo Domingo", ("JM", "DO")),
        (None, "Belmopan and Panama City", ("BZ", "PA")),
        (None, "Panamax ships and Cubanismo", ()),  # whole words only
        (None, "El programa usa datos abiertos", ()),  # Spanish "usa" is not the USA
        (None, "staff speak Spanish, English and French", ()),
        ("", "", ()),
    ],
)
def test_detect_countries(place: str | None, text: str, expected: tuple[str, ...]) -> None:
    assert geo.detect_countries(place, text) == expected


def test_detect_countries_lists_each_country_once_place_first() -> None:
    found = geo.detect_countries("Santo Domingo", "Haiti, the Dominican Republic and Haiti")
    assert found == ("DO", "HT")
