"""The public archive: the issues that went out, per language, for /archive and its feed.

Only what every reader of an edition got: the subject and the web copy of a regional
variant (or, if the issue had none in that language, its first country variant).
Nothing personal, nothing unsent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Issue, IssueVariant

REGIONAL = "regional"


@dataclass(frozen=True)
class ArchiveEntry:
    slug: str
    label: str  # the web copy's variant label: es-regional, es-CR
    subject: str
    sent_at: datetime


def sent_issues(session: Session, language: str, *, limit: int = 200) -> list[ArchiveEntry]:
    """The sent issues with a variant in `language`, newest first."""
    rows = session.execute(
        select(Issue.slug, Issue.sent_at, IssueVariant.country, IssueVariant.subject)
        .join(IssueVariant, IssueVariant.issue_id == Issue.id)
        .where(Issue.status == "sent", Issue.sent_at.is_not(None),
               IssueVariant.language == language)
        .order_by(Issue.sent_at.desc(), Issue.id.desc(), IssueVariant.country)
    )
    entries: dict[str, ArchiveEntry] = {}
    for slug, sent_at, country, subject in rows:
        if slug in entries or sent_at is None:  # "" sorts first: the regional variant wins
            continue
        entries[slug] = ArchiveEntry(slug, f"{language}-{country or REGIONAL}", subject,
                                     sent_at)
        if len(entries) >= limit:
            break
    return list(entries.values())
