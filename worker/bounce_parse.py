"""What a message that came back by mail says: a pure function of its bytes.

`classify` reads one message sent to a bounce address and returns a `Report`:

- **hard**: a delivery status notification (RFC 3464) whose Action is `failed` with a
  permanent status about the address itself (5.1.x: no such mailbox or domain; 5.2.1:
  mailbox disabled; 5.4.1 and 5.4.4: no route to it), or a non-standard bounce that
  flufl.bounce (Mailman's detector) reads as a permanent failure;
- **soft**: a temporary failure given up on (4.x.x), or a permanent one that is not
  about the address (5.2.2 mailbox full, 5.7.x refused by policy, 5.3.4 too big...): the
  address may work tomorrow, so these are only counted;
- **delayed**: `Action: delayed`, the relay still tries: recorded, not counted;
- **complaint**: an abuse report in the Abuse Reporting Format (RFC 5965, Feedback-Type
  abuse or fraud), as mailbox providers' feedback loops send them;
- **unsubscribe**: a message to the List-Unsubscribe mailto address;
- **auto-reply**: a vacation or out-of-office reply (RFC 3834 Auto-Submitted, the usual
  X- headers, or a subject that says so): changes nothing, however much it looks like a
  failure (listmonk counted these as bounces, issue #1334);
- **unrelated**: anything else: kept, changes nothing.

Which delivery a report is about comes from the address it was sent to (VERP,
`worker.verp`), else from the original message's Message-ID quoted in the report. Nothing
a message holds makes this raise: a malformed one is `unrelated` with a note.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from typing import Literal

from worker import verp

Kind = Literal["hard", "soft", "delayed", "complaint", "unsubscribe", "auto-reply",
               "unrelated"]
MAX_DIAGNOSTIC = 500
MAX_BYTES = 10 * 1024 * 1024  # a report larger than this is read only this far
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_HARD = re.compile(r"5\.1\.\d+|5\.2\.1|5\.4\.1|5\.4\.4")
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|answer)|out of (the )?office|vacation|"
    r"away from|respuesta autom[aá]tica|fuera de la oficina|r[ée]ponse automatique|"
    r"absence|abwesenheit)", re.I)
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}@[^<>\s]{1,250}>")


@dataclass(frozen=True)
class Report:
    kind: Kind
    token: verp.Token | None = None  # the delivery, from the VERP address
    original_message_id: str = ""  # the Message-ID of what we sent, when quoted
    recipient: str = ""  # the address that failed or complained, as the report says
    status: str = ""  # the enhanced status code, e.g. 5.1.1
    diagnostic: str = ""  # what the server said, or why we read it as we did
    notes: list[str] = field(default_factory=list)


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw[:MAX_BYTES], policy=policy.compat32)
    assert isinstance(message, Message)
    return message  # type: ignore[return-value]


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # noqa: BLE001 (a header the email package cannot decode)
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _clean(text: str, limit: int = MAX_DIAGNOSTIC) -> str:
    text = " ".join(text.replace("\x00", " ").split())
    return text[:limit]


def _own_token(addresses: list[str], domain: str) -> verp.Token | None:
    for address in addresses:
        for candidate in re.findall(r"[^\s<>,;\"']+@[^\s<>,;\"']+", address):
            token = verp.parse(candidate, domain)
            if token is not None:
                return token
    return None


def _unsubscribe_token(addresses: list[str], domain: str) -> verp.Token | None:
    """A token of our List-Unsubscribe mailto address: unsubscribe+<d>.<mac>@domain."""
    for address in addresses:
        for candidate in re.findall(r"[^\s<>,;\"']+@[^\s<>,;\"']+", address):
            local, _, at = candidate.rpartition("@")
            if local.lower().startswith(verp.UNSUBSCRIBE_PREFIX + "+"):
                token = verp.parse(f"{verp.PREFIX}+{local.split('+', 1)[1]}@{at}", domain)
                if token is not None:
                    return token
    return None


def _report_parts(message: Message, report_type: str) -> list[Message]:
    """The parts of a multipart/report of `report_type`, or []."""
    if message.get_content_type() != "multipart/report":
        return []
    if (message.get_param("report-type") or "").lower() != report_type:  # type: ignore[union-attr]
        return []
    payload = message.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _fields(part: Message) -> list[dict[str, str]]:
    """The field groups of a message/delivery-status or message/feedback-report part:
    the per-message group first, then one per recipient."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parsed the groups as messages
        groups = [{k.lower(): _clean(str(v)) for k, v in p.items()} for p in payload
                  if isinstance(p, Message)]
        return groups
    text = payload if isinstance(payload, str) else ""
    groups = []
    for block in re.split(r"\r?\n\s*\r?\n", text.strip()):
        found: dict[str, str] = {}
        last = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and last:
                found[last] += " " + line.strip()
                continue
            name, colon, value = line.partition(":")
            if colon:
                last = name.strip().lower()
                found[last] = _clean(value)
        if found:
            groups.append(found)
    return groups


def _original_header(parts: list[Message], name: str) -> str:
    """A header of the returned message (message/rfc822 or text/rfc822-headers)."""
    for part in parts:
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers",
                                       "message/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                found = _header(payload[0], name)
            else:
                text = payload if isinstance(payload, str) else ""
                match = re.search(rf"(?im)^{re.escape(name)}:\s*(.+)$", text)
                found = match.group(1) if match else ""
            if found:
                return found
    return ""


def _original_message_id(parts: list[Message]) -> str:
    """The Message-ID of the returned message: evidence only (it names no delivery)."""
    match = _MESSAGE_ID.search(_original_header(parts, "Message-ID"))
    return match.group(0) if match else ""


def _address(value: str) -> str:
    """`rfc822; ana@example.org` -> ana@example.org."""
    return _clean(value.partition(";")[2] if ";" in value else value, 320).strip("<> ")


def _from_dsn(parts: list[Message], token: verp.Token | None, domain: str) -> Report | None:
    status_parts = [p for p in parts if p.get_content_type() in (
        "message/delivery-status", "message/global-delivery-status")]
    if not status_parts:
        return None
    groups = _fields(status_parts[0])
    recipients = [g for g in groups if "action" in g or "final-recipient" in g
                  or "status" in g]
    original = _original_message_id(parts)
    for group in recipients:
        action = group.get("action", "").lower()
        match = _STATUS.search(group.get("status", ""))
        status = ".".join(match.groups()) if match else ""
        diagnostic = group.get("diagnostic-code", "")
        diagnostic = diagnostic.partition(";")[2].strip() if ";" in diagnostic else diagnostic
        recipient = _address(group.get("original-recipient", "")
                             or group.get("final-recipient", ""))
        if action in ("delivered", "relayed", "expanded"):
            continue
        if action == "failed" or status.startswith("5"):
            kind: Kind = "hard" if status and _HARD.fullmatch(status) else "soft"
            if not status:  # failed without a status: a permanent failure of some kind
                kind, status = "hard", "5.0.0"
        elif action == "delayed":  # the relay still tries: not a failure (yet)
            kind = "delayed"
        else:  # a 4.x.x that was given up on
            kind = "soft"
        return Report(kind, token, original, recipient, status,
                      _clean(diagnostic or f"Action: {action or 'none'}"))
    return Report("unrelated", token, original,
                  diagnostic="a delivery status report that reports no failure")


def _from_arf(parts: list[Message], token: verp.Token | None, domain: str) -> Report | None:
    feedback = [p for p in parts if p.get_content_type() == "message/feedback-report"]
    if not feedback:
        return None
    fields: dict[str, str] = {}
    for group in _fields(feedback[0]):
        fields.update(group)
    kind_of = fields.get("feedback-type", "").lower()
    original = _original_message_id(parts)
    recipient = _address(fields.get("original-rcpt-to", ""))
    # a feedback loop mails its own address, not ours: the original's envelope sender
    token = token or _own_token([fields.get("original-mail-from", ""),
                                 _original_header(parts, "Return-Path")], domain)
    if kind_of in ("abuse", "fraud", "virus", ""):
        source = fields.get("user-agent", "") or fields.get("reporting-mta", "")
        return Report("complaint", token, original, recipient, "",
                      _clean(f"Feedback-Type: {kind_of or 'abuse'}"
                             + (f" from {source}" if source else "")))
    return Report("unrelated", token, original, recipient,
                  diagnostic=_clean(f"a feedback report of type {kind_of}: not a complaint"))


def _auto_reply(message: Message) -> str:
    """Why `message` is an automatic reply, or ''."""
    submitted = _header(message, "Auto-Submitted").lower()
    if submitted and submitted != "no" and message.get_content_type() != "multipart/report":
        return f"Auto-Submitted: {submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        if _header(message, name):
            return f"{name} header"
    precedence = _header(message, "Precedence").lower()
    if precedence in ("auto_reply", "auto-reply"):
        return f"Precedence: {precedence}"
    subject = _header(message, "Subject")
    if _AUTO_SUBJECT.match(subject):
        return f"subject {_clean(subject, 80)!r}"
    return ""


_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery (sub)?system|mail administrator",
                     re.I)
_FAILURE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed)|mail delivery failed|"
    r"returned mail|failure notice|could not be delivered|non[- ]?delivery", re.I)


def _from_a_mail_system(message: Message) -> bool:
    """Whether a mail server (not a person) wrote `message`: bounces carry
    Auto-Submitted too (RFC 3834), so that header alone does not tell them apart."""
    return bool(_DAEMON.search(_header(message, "From"))
                or _FAILURE_SUBJECT.search(_header(message, "Subject")))


def _flufl(message: Message) -> tuple[set[str], set[str]]:
    """(temporary, permanent) failures that Mailman's detectors find, or empty sets."""
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 (a detector tripping over an odd message)
        return set(), set()
    return {_text(a) for a in temporary}, {_text(a) for a in permanent}


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def classify(raw: bytes, bounce_domain: str, *, envelope_to: tuple[str, ...] = ()) -> Report:
    """What `raw` (one message, as received) reports. `envelope_to`: the SMTP
    recipients it arrived for, when it came by SMTP (they name the delivery best).
    Never raises: a message the email package trips over is `unrelated`, with why."""
    try:
        return _classify(raw, bounce_domain, envelope_to)
    except Exception as exc:  # noqa: BLE001 (outside input: a bad part, a bad charset...)
        return Report("unrelated", diagnostic=_clean(
            f"not a readable message ({exc.__class__.__name__}: {exc})", 200))


def _classify(raw: bytes, bounce_domain: str, envelope_to: tuple[str, ...]) -> Report:
    message = _parse(raw)
    addressed = [*envelope_to] + [_header(message, h) for h in (
        "Delivered-To", "X-Original-To", "Envelope-To", "To")]
    unsubscribe = _unsubscribe_token(addressed, bounce_domain)
    if unsubscribe is not None:
        return Report("unsubscribe", unsubscribe, diagnostic=_clean(
            f"a message to the unsubscribe address, subject "
            f"{_header(message, 'Subject')[:80]!r}"))
    token = _own_token(addressed, bounce_domain)
    for report_type, reader in (("delivery-status", _from_dsn),
                                ("feedback-report", _from_arf)):
        parts = _report_parts(message, report_type)
        if parts:
            found = reader(parts, token, bounce_domain)
            if found is not None:
                return found
    auto = _auto_reply(message)
    daemon = _from_a_mail_system(message)
    if auto and not daemon:  # a person's vacation reply, however it is worded
        return Report("auto-reply", token, diagnostic=_clean(f"an automatic reply ({auto})"))
    temporary, permanent = _flufl(message) if daemon or not auto else (set(), set())
    if permanent or temporary:
        kind: Kind = "hard" if permanent else "soft"
        failed = sorted(permanent or temporary)
        return Report(kind, token, "", failed[0][:320], "",
                      _clean(f"a non-standard bounce read by flufl.bounce "
                             f"({'permanent' if permanent else 'temporary'} failure of "
                             f"{', '.join(failed)[:200]})"))
    return Report("unrelated", token, diagnostic="neither a bounce, a complaint nor an "
                                                 "unsubscribe request")
