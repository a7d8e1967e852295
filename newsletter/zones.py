"""Which time zone a subscriber lives in, and what a local wall time is in UTC.

A subscriber's zone is their `timezone` attribute when it names an IANA zone, else their
country's zone, else the zone the issue (or its series) was scheduled in. A country's
zones come from tzdata's zone.tab; for a country with several, a documented choice is
made (the capital's or the most populous zone, `SEVERAL_ZONES`), and the scheduling
report says so: a subscriber elsewhere in that country sets their `timezone` attribute.

Pure functions: no database, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import cache
from importlib.resources import files
from zoneinfo import ZoneInfo, available_timezones

# A country with more than one zone in zone.tab -> the zone used for its subscribers who
# have no `timezone` attribute: the capital's, which is also where most people live.
# Countries not listed take zone.tab's first line for them (its most populous zone).
SEVERAL_ZONES: dict[str, str] = {
    "AR": "America/Argentina/Buenos_Aires",
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "CL": "America/Santiago",
    "CN": "Asia/Shanghai",
    "CD": "Africa/Kinshasa",
    "EC": "America/Guayaquil",
    "ES": "Europe/Madrid",
    "ID": "Asia/Jakarta",
    "KZ": "Asia/Almaty",
    "MN": "Asia/Ulaanbaatar",
    "MX": "America/Mexico_City",
    "NZ": "Pacific/Auckland",
    "PT": "Europe/Lisbon",
    "RU": "Europe/Moscow",
    "UA": "Europe/Kyiv",
    "US": "America/New_York",
}

ATTRIBUTE = "timezone"  # the subscriber attribute that names their zone
MAX_ZONE_NAME = 64  # the longest IANA name is 32 characters; the column holds 64


@cache
def _zone_tab() -> dict[str, tuple[str, ...]]:
    """Country code -> its zones, in zone.tab's order."""
    text = files("tzdata").joinpath("zoneinfo/zone.tab").read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) >= 3:
            found.setdefault(fields[0].upper(), []).append(fields[2])
    return {code: tuple(zones) for code, zones in found.items()}


def zones_of_country(country: str | None) -> tuple[str, ...]:
    """Every zone of an ISO 3166-1 alpha-2 country (empty for an unknown code)."""
    return _zone_tab().get((country or "").upper(), ())


def country_zone(country: str | None) -> str | None:
    """The zone used for a country's subscribers: its only zone, or the documented choice
    for a country with several; None for no country or an unknown code."""
    zones = zones_of_country(country)
    if not zones:
        return None
    return SEVERAL_ZONES.get((country or "").upper(), zones[0])


@cache
def _zone_names() -> dict[str, str]:
    """lower-case name -> the IANA spelling, for every zone tzdata has."""
    return {name.lower(): name for name in available_timezones()}


def zone_named(value: object) -> str | None:
    """The IANA zone `value` names (case-insensitively, surrounding spaces ignored), or
    None when it names none: anything a person typed or an attribute holds is safe here."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ZONE_NAME:
        return None
    return _zone_names().get(value.strip().lower())


@dataclass(frozen=True)
class Resolved:
    zone: str
    via: str  # "attribute", "country" or "fallback"


def resolve(attribute: object, country: str | None, fallback: str) -> Resolved:
    """A subscriber's zone: their attribute, else their country's, else `fallback`."""
    named = zone_named(attribute)
    if named:
        return Resolved(named, "attribute")
    by_country = country_zone(country)
    if by_country:
        return Resolved(by_country, "country")
    return Resolved(fallback, "fallback")


def to_utc(day: date, wall: time, zone: str) -> datetime:
    """`wall` on `day` in `zone` as naive UTC.

    A wall time the clocks skip (the spring-forward gap) is read with the offset before
    the jump, as RFC 5545 says, which moves it forward by the jump (02:30 -> 03:30); a
    wall time that happens twice (the autumn fold) is the first of the two."""
    local = datetime.combine(day, wall.replace(tzinfo=None, fold=0)).replace(
        tzinfo=ZoneInfo(zone))
    return local.astimezone(UTC).replace(tzinfo=None)


def to_local(instant: datetime, zone: str) -> datetime:
    """Naive UTC `instant` as the wall time (naive) in `zone`."""
    return instant.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None)
