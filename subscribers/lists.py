"""Mailing lists: named groups people subscribe to, each single or double opt-in."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from subscribers.models import OPT_IN_MODES, MailingList, Subscription

MAX_NAME = 100


class ListError(NewsletterError):
    """A list cannot be created, found or changed as asked."""


@dataclass(frozen=True)
class ListSummary:
    id: int
    name: str
    description: str
    opt_in: str
    confirmed: int
    unconfirmed: int
    unsubscribed: int


def _check_name(name: str) -> str:
    value = name.strip()
    if not value or len(value) > MAX_NAME or any(c in value for c in ",\r\n\t"):
        raise ListError(
            f"{name!r} is not a usable list name: 1 to {MAX_NAME} characters, "
            "no commas or line breaks"
        )
    return value


def get_list(session: Session, name: str) -> MailingList:
    found = session.scalar(select(MailingList).where(MailingList.name == name))
    if found is None:
        raise ListError(
            f"no list called {name!r}: `newsletter lists list` shows the lists there are"
        )
    return found


def create_list(
    session: Session, name: str, *, opt_in: str = "single", description: str = "",
    public: bool = False,
) -> MailingList:
    name = _check_name(name)
    if opt_in not in OPT_IN_MODES:
        raise ListError(f"opt-in mode {opt_in!r}: use single or double")
    if session.scalar(select(MailingList.id).where(MailingList.name == name)) is not None:
        raise ListError(f"a list called {name!r} exists already")
    created = MailingList(name=name, opt_in=opt_in, description=description.strip(),
                          public=public)
    session.add(created)
    session.flush()
    return created


def rename_list(session: Session, name: str, new_name: str) -> MailingList:
    found = get_list(session, name)
    new_name = _check_name(new_name)
    if new_name != name and session.scalar(
        select(MailingList.id).where(MailingList.name == new_name)
    ) is not None:
        raise ListError(f"a list called {new_name!r} exists already")
    found.name = new_name
    session.flush()
    return found


def update_list(
    session: Session, name: str, *, opt_in: str | None = None, description: str | None = None,
    public: bool | None = None,
) -> MailingList:
    found = get_list(session, name)
    if opt_in is not None:
        if opt_in not in OPT_IN_MODES:
            raise ListError(f"opt-in mode {opt_in!r}: use single or double")
        found.opt_in = opt_in
    if description is not None:
        found.description = description.strip()
    if public is not None:
        found.public = public
    session.flush()
    return found


def public_lists(session: Session) -> list[MailingList]:
    """The lists the public sign-up form offers, by name."""
    return list(session.scalars(
        select(MailingList).where(MailingList.public.is_(True)).order_by(MailingList.name)))


def delete_list(session: Session, name: str) -> int:
    """Delete a list and its subscriptions (not the subscribers); returns how many it had."""
    found = get_list(session, name)
    count = session.scalar(
        select(func.count()).select_from(Subscription).where(Subscription.list_id == found.id)
    ) or 0
    session.execute(delete(Subscription).where(Subscription.list_id == found.id))
    session.delete(found)
    session.flush()
    return count


def list_summaries(session: Session) -> list[ListSummary]:
    counts: dict[tuple[int, str], int] = {
        (list_id, status): n
        for list_id, status, n in session.execute(
            select(Subscription.list_id, Subscription.status, func.count())
            .group_by(Subscription.list_id, Subscription.status)
        )
    }
    return [
        ListSummary(
            m.id, m.name, m.description, m.opt_in,
            counts.get((m.id, "confirmed"), 0),
            counts.get((m.id, "unconfirmed"), 0),
            counts.get((m.id, "unsubscribed"), 0),
        )
        for m in session.scalars(select(MailingList).order_by(MailingList.name))
    ]
