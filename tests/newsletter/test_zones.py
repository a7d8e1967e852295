"""Zones: attribute, country (zone.tab, a documented choice for several), fallback; local
wall times to UTC across daylight-saving changes. Pure: no database, no clock."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter import zones


def test_every_documented_choice_is_one_of_that_countrys_zones() -> None:
    for country, zone in zones.SEVERAL_ZONES.items():
        assert zone in zones.zones_of_country(country), country
        assert len(zones.zones_of_country(country)) > 1, f"{country} has one zone: drop it"
        ZoneInfo(zone)


@pytest.mark.parametrize(("country", "zone"), [
    ("CR", "America/Costa_Rica"), ("cr", "America/Costa_Rica"), ("NI", "America/Managua"),
    ("MX", "America/Mexico_City"), ("US", "America/New_York"), ("ES", "Europe/Madrid"),
    ("BR", "America/Sao_Paulo"), ("CA", "America/Toronto"), ("PT", "Europe/Lisbon"),
    ("GL", zones.zones_of_country("GL")[0]),  # several, no choice listed: zone.tab's first
    ("XX", None), ("", None), (None, None),
])
def test_country_zone(country: str | None, zone: str | None) -> None:
    assert zones.country_zone(country) == zone


def test_zone_names_are_read_leniently_and_safely() -> None:
    assert zones.zone_named("America/Costa_Rica") == "America/Costa_Rica"
    assert zones.zone_named("  america/costa_rica ") == "America/Costa_Rica"
    assert zones.zone_named("utc") == "UTC"
    for bad in ("", " ", "Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime",
                "America/", "x" * 100, 5, None, ["UTC"], {"zone": "UTC"}):
        assert zones.zone_named(bad) is None, bad


def test_attribute_then_country_then_fallback() -> None:
    assert zones.resolve("America/Tijuana", "MX", "UTC") == zones.Resolved(
        "America/Tijuana", "attribute")
    assert zones.resolve("Not/AZone", "MX", "UTC") == zones.Resolved(
        "America/Mexico_City", "country")
    assert zones.resolve(None, "ZZ", "Europe/Madrid") == zones.Resolved(
        "Europe/Madrid", "fallback")


def test_local_times_across_daylight_saving() -> None:
    # winter: Madrid UTC+1, Costa Rica UTC-6 all year
    assert zones.to_utc(date(2026, 12, 7), time(9), "Europe/Madrid") == datetime(2026, 12, 7, 8)
    assert zones.to_utc(date(2026, 7, 7), time(9), "Europe/Madrid") == datetime(2026, 7, 7, 7)
    assert zones.to_utc(date(2026, 7, 7), time(9), "America/Costa_Rica") == datetime(
        2026, 7, 7, 15)
    # 02:30 does not exist in New York on 2026-03-08: it moves forward to 03:30 EDT
    gap = zones.to_utc(date(2026, 3, 8), time(2, 30), "America/New_York")
    assert gap == datetime(2026, 3, 8, 7, 30)
    assert zones.to_local(gap, "America/New_York") == datetime(2026, 3, 8, 3, 30)
    # 01:30 happens twice on 2026-11-01: the first (EDT, UTC-4) is taken
    assert zones.to_utc(date(2026, 11, 1), time(1, 30), "America/New_York") == datetime(
        2026, 11, 1, 5, 30)
    assert zones.to_local(datetime(2026, 12, 7, 15), "America/Costa_Rica") == datetime(
        2026, 12, 7, 9)


@pytest.mark.fuzz
@given(attribute=st.one_of(st.none(), st.text(max_size=80), st.integers(),
                           st.sampled_from(sorted(zones.SEVERAL_ZONES.values()))),
       country=st.one_of(st.none(), st.text(max_size=3)))
def test_any_attribute_and_country_resolve_to_a_real_zone(attribute: object,
                                                          country: str | None) -> None:
    found = zones.resolve(attribute, country, "UTC")
    ZoneInfo(found.zone)
    assert found.via in ("attribute", "country", "fallback")
    assert zones.to_utc(date(2026, 12, 7), time(9), found.zone).tzinfo is None
