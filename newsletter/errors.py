"""The one base error; specific errors live beside the code that raises them.

An error a person meets in the newsroom as well as in the CLI carries its message as a
`Message`: an English template with named values, which the newsroom translates and then
fills (`NewsletterError.translatable(N_("issue %(slug)s is %(status)s"), slug=...,
status=Term(issue.status))`). `str()` of the error stays the English text the CLI prints:
the template filled, then the CLI's own `hint` (an option or a command to run), which no
other interface shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Self


def N_(message: str) -> str:
    """Marks a message for the newsroom's catalog; translated where it is shown."""
    return message


class Term(str):
    """A value that is a word of the system (a status, a review state), which an interface
    shows as its own label ("scheduled" is "programado" in Spanish)."""

    __slots__ = ()


@dataclass(frozen=True)
class Message:
    """A message for a person: `template % values`, and a `hint` for the CLI only."""

    template: str
    values: Mapping[str, object] = field(default_factory=dict)
    hint: str = ""

    def __str__(self) -> str:
        return self.text() + self.hint

    def text(self, gettext: Callable[[str], str] = str,
             term: Callable[[str], str] = str) -> str:
        """The message without the CLI's hint: the template through `gettext`, filled with
        the values, terms through `term` and nested messages translated the same way."""
        def shown(value: object) -> object:
            if isinstance(value, Message):
                return value.text(gettext, term)
            if isinstance(value, Term):
                return term(value)
            return value

        filled = {name: shown(value) for name, value in self.values.items()}
        return gettext(self.template) % filled if filled else gettext(self.template)


class NewsletterError(Exception):
    """An error a user can act on: its message says what went wrong and what to do."""

    message: Message | None = None

    def __init__(self, text: str | Message = "", *args: object) -> None:
        if isinstance(text, Message):
            self.message = text
            text = str(text)
        super().__init__(text, *args)

    @classmethod
    def translatable(cls, template: str, /, *, hint: str = "", **values: object) -> Self:
        """The error with a message the newsroom translates (see the module's help)."""
        return cls(Message(template, values, hint))

    def text(self, gettext: Callable[[str], str] = str,
             term: Callable[[str], str] = str) -> str:
        """The message for an interface that is not the CLI: translated when it can be,
        else the English text."""
        return self.message.text(gettext, term) if self.message else str(self)
