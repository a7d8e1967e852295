"""Settings are outside input: a value that would break or forge a mail header is refused
when the settings load, with a message that names the NEWSLETTER_* variable, and the CLI
shows that message, not a traceback."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from newsletter.cli import cli
from newsletter.render import Rendered
from newsletter.settings import MAX_HEADER_NAME, Settings, SettingsError, load_settings
from worker.mime import Headers, build_message

INJECTED = "desk@example.org\r\nBcc: evil@example.com"
HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
           "List-Unsubscribe-Post", "MIME-Version", "Content-Type"}

BAD = [
    ("reply_to", INJECTED, "line break"),
    ("reply_to", "desk@example.org\nBcc: evil@example.com", "line break"),
    ("reply_to", "=?utf-8?q?Desk=0D=0ABcc:_x@y.org?= <desk@example.org>", "'=?'"),
    ("reply_to", "=?utf-8?b?ZGVzaw==?=@example.org", "'=?'"),
    ("reply_to", "desk@example.org, other@example.org", "not an email address"),
    ("reply_to", "Desk, Regional <desk@example.org>", "not one address"),
    ("reply_to", "Desk <not an address>", "not an email address"),
    ("reply_to", "D" * 201 + " <desk@example.org>", "longer than 200"),
    ("reply_to", "Desk <desk@example.org", "not one address"),  # no pattern matched these:
    ("reply_to", "desk>@example.org", "not one address"),  # an AssertionError's message
    ("sender_email", "news@example.org\r\nBcc: evil@example.com", "line break"),
    ("sender_email", "=?utf-8?q?x?=@example.org", "'=?'"),
    ("sender_email", "news", "not an email address"),
    ("sender_email", "José@example.org", "not ASCII"),
    ("sender_email", "", "not an email address"),
    ("sender_name", "News\r\nBcc: evil@example.com", "line break"),
    ("sender_name", "News\u2028Bcc: evil@example.com", "line break"),
    ("sender_name", "Boletín =?utf-8?q?x?=", "'=?'"),
    ("sender_name", "𝔸" * (MAX_HEADER_NAME + 1), "longer than 200"),
]


def variable(field: str) -> str:
    return f"NEWSLETTER_{field.upper()}"


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """A fresh place for the CLI's files (these tests need no database server)."""
    return {"NEWSLETTER_VAR_DIR": str(tmp_path / "var"), "NEWSLETTER_SMTP_URL": "",
            "NEWSLETTER_BROKER_URL": "", "NEWSLETTER_DATABASE_URL": ""}


@pytest.mark.parametrize(("field", "value", "reason"), BAD)
def test_a_value_that_would_break_a_header_is_refused_naming_the_variable(
    field: str, value: str, reason: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(**{field: value})
    message = str(refused.value)
    assert message.startswith(f"{variable(field)}: "), message
    assert reason in message
    assert "\r" not in message and "\n" not in message  # the value is shown quoted


@pytest.mark.parametrize(("field", "value", "reason"), BAD)
def test_the_cli_says_which_variable_is_wrong_without_a_traceback(
    cli_env: dict[str, str], field: str, value: str, reason: str
) -> None:
    result = CliRunner(env={**cli_env, variable(field): value}).invoke(
        cli, ["subscribers", "list"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {variable(field)}: "), result.output
    assert reason in result.output
    assert "Traceback" not in result.output and "pydantic" not in result.output
    assert not isinstance(result.exception, SettingsError | ValueError)


def test_other_settings_that_do_not_parse_are_named_too(cli_env: dict[str, str]) -> None:
    result = CliRunner(env={**cli_env, "NEWSLETTER_BATCH_SIZE": "many"}).invoke(
        cli, ["subscribers", "list"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: NEWSLETTER_BATCH_SIZE: "), result.output
    assert "validation error" not in result.output


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reply_to", ""),
        ("reply_to", "desk@example.org"),
        ("reply_to", "Mesa <desk@example.org>"),
        ("reply_to", '"Mesa, Regional" <desk@example.org>'),
        ("reply_to", "Mesa de Redacción <desk@example.org>"),
        ("reply_to", "Mr. Desk <desk@example.org>"),
        ("sender_email", "news@xn--bcher-kva.example"),
        ("sender_name", "Boletín Regional"),
        ("sender_name", ""),
        ("sender_name", "𝔸" * MAX_HEADER_NAME),
    ],
)
def test_ordinary_values_load(field: str, value: str) -> None:
    assert getattr(load_settings(**{field: value}), field) == value


def test_an_injected_reply_to_used_to_put_a_bcc_in_the_message(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The issue's case: the demo ran and its .eml files carried a Bcc; now nothing runs."""
    result = CliRunner(env={**cli_env, "NEWSLETTER_REPLY_TO": INJECTED}).invoke(
        cli, ["demo", "--outbox", str(tmp_path / "outbox")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: NEWSLETTER_REPLY_TO: ")
    assert not list(tmp_path.rglob("*.eml"))


def message_for(settings: Settings) -> EmailMessage:
    raw = build_message(
        Rendered("Noticias", "<p>Hola</p>", "Hola"),
        Headers(settings.sender_name, settings.sender_email, "Ana", "ana@example.org",
                "<m.1@example.org>", "news.example.org", "https://news.example.org/u/1.x",
                settings.reply_to),
    )
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


_TEXT = st.text(st.characters(codec="utf-8"), max_size=60)
_ADDRESSES = st.sampled_from(["desk@example.org", "a.b+c@news.example.org"])
_VALUES = {
    "sender_name": _TEXT | st.builds(lambda a, b: f"{a}=?{b}", _TEXT, _TEXT),
    "sender_email": _TEXT | _ADDRESSES | st.builds(lambda a, b: a + b, _ADDRESSES, _TEXT),
    "reply_to": _TEXT | _ADDRESSES
    | st.builds(lambda name, a: f"{name} <{a}>", _TEXT, _ADDRESSES)
    | st.builds(lambda name, a: f"{name} <{a}>\r\nBcc: {a}", _TEXT, _ADDRESSES),
}


@pytest.mark.fuzz
@given(field=st.sampled_from(sorted(_VALUES)), data=st.data())
def test_any_value_is_refused_by_name_or_makes_a_clean_message(
    field: str, data: st.DataObject
) -> None:
    value = data.draw(_VALUES[field])
    try:
        settings = load_settings(**{field: value})
    except SettingsError as exc:
        assert str(exc).startswith(f"{variable(field)}: ")
        return
    msg = message_for(settings)
    expected = HEADERS | ({"Reply-To"} if settings.reply_to else set())
    assert set(msg.keys()) == expected
    assert all(len(msg.get_all(name) or []) == 1 for name in expected)
    assert [a.addr_spec for a in msg["From"].addresses] == [settings.sender_email]
    if settings.reply_to:
        assert len(msg["Reply-To"].addresses) == 1


@pytest.mark.parametrize("value", ["de", "zh-Hant-TW", "es\r\nBcc: x@example.org", ""])
def test_the_default_language_is_one_of_the_editions(value: str) -> None:
    """It is the edition everyone else gets: "zh-Hant-TW" did not fit a delivery's language
    column (a PostgreSQL error at send), and "de" has no edition to render."""
    with pytest.raises(SettingsError, match="^NEWSLETTER_DEFAULT_LANGUAGE: .* not one of the "
                                            "editions"):
        load_settings(default_language=value)
    assert load_settings(default_language=" ES ").default_language == "es"
    assert load_settings(languages=["en", "pt_br"], default_language="pt-br"
                         ).default_language == "pt-BR"


@pytest.mark.parametrize("value", [".<0@0.A>", "0.<0@0.A>"])
def test_a_reply_to_that_trips_the_header_parser_is_refused(value: str) -> None:
    """Found by the fuzz: the email package raised AttributeError on these."""
    with pytest.raises(SettingsError, match="^NEWSLETTER_REPLY_TO: .* not one address"):
        load_settings(reply_to=value)


@pytest.mark.parametrize("field", ["scheduler_seconds", "catch_up_hours",
                                   "feed_timeout_seconds", "feed_max_bytes"])
@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_the_calendars_durations_and_sizes_must_be_above_zero(field: str, value: str) -> None:
    if field == "feed_max_bytes" and value == "nan":
        value = "-1"  # an integer setting: "nan" does not even parse
    with pytest.raises(SettingsError, match=f"NEWSLETTER_{field.upper()}: .*above 0"):
        load_settings(**{field: value})
    assert getattr(load_settings(**{field: "3"}), field) == 3


LOGO = {"logo_url": "https://news.example.org/logo.png", "logo_width": "160",
        "logo_height": "40"}


@pytest.mark.parametrize(("values", "named", "reason"), [
    ({**LOGO, "logo_url": "http://news.example.org/logo.png"}, "LOGO_URL", "not an https URL"),
    ({**LOGO, "logo_url": "logo.png"}, "LOGO_URL", "not an https URL"),
    ({**LOGO, "logo_url": "javascript:alert(1)"}, "LOGO_URL", "not an https URL"),
    ({**LOGO, "logo_url": 'https://x.org/a.png" onerror="x'}, "LOGO_URL", "not an https URL"),
    ({**LOGO, "logo_url": "https://x.org/a b.png"}, "LOGO_URL", "not an https URL"),
    ({**LOGO, "logo_url": "https://bücher.example/a.png"}, "LOGO_URL", "not an https URL"),
    ({**LOGO, "logo_width": "0"}, "LOGO_WIDTH", "not a size from 1 to 600"),
    ({**LOGO, "logo_height": "601"}, "LOGO_HEIGHT", "not a size from 1 to 600"),
    ({**LOGO, "logo_width": "-3"}, "LOGO_WIDTH", "not a size from 1 to 600"),
    ({"logo_url": LOGO["logo_url"]}, "LOGO_WIDTH", "a logo needs its size"),
    ({**LOGO, "logo_height": ""}, "LOGO_HEIGHT", "a logo needs its size"),
    ({**LOGO, "logo_alt": "Logo\r\nBcc: x@y.org"}, "LOGO_ALT", "one line"),
    ({**LOGO, "logo_alt": "L" * 201}, "LOGO_ALT", "at most 200"),
])
def test_the_logo_is_an_https_url_with_its_size(
    cli_env: dict[str, str], values: dict[str, str], named: str, reason: str
) -> None:
    env = {**cli_env, **{variable(k): v for k, v in values.items()}}
    result = CliRunner(env=env).invoke(cli, ["subscribers", "list"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: NEWSLETTER_{named}: "), result.output
    assert reason in result.output and "Traceback" not in result.output


def test_a_logo_loads_and_none_is_the_default() -> None:
    settings = load_settings(**LOGO, logo_alt=" Boletín Regional ")
    assert (settings.logo_url, settings.logo_width, settings.logo_height,
            settings.logo_alt) == (LOGO["logo_url"], 160, 40, "Boletín Regional")
    assert load_settings(**{**LOGO, "logo_width": "1", "logo_height": "600"}).logo_height == 600
    default = load_settings()
    assert (default.logo_url, default.logo_alt, default.logo_width, default.logo_height) == (
        "", "", None, None)
    assert load_settings(logo_width="120", logo_height="").logo_url == ""  # a size alone: no logo
