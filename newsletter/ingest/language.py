"""Which language an item is written in, when its file does not say.

py3langid (a maintained fork of langid.py: one pure-Python wheel, its model inside, no
network) scores the text against the languages we publish in. A short or mixed text it
is not sure about keeps the fallback language rather than a guess.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

MIN_CONFIDENCE = 0.9  # below this (probability among the candidates) the fallback stays


@lru_cache(maxsize=1)
def _model() -> LanguageIdentifier:
    """Loading the model takes about a second: once per process, and only in one that
    imports items (py3langid brings numpy: no other command should pay for it)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=8)
def _model_for(candidates: tuple[str, ...]) -> LanguageIdentifier:
    """The model restricted to some languages (a shallow copy: the tables are shared)."""
    model = copy.copy(_model())
    model.set_languages(list(candidates) or None)
    return model


def known_languages() -> frozenset[str]:
    return frozenset(_model().labels)


def detect_language(text: str, among: Sequence[str] | None = None) -> str | None:
    """The language of `text`, one of `among` (None or none known: any the model knows),
    or None when the model is not sure."""
    known = known_languages()
    candidates = tuple(sorted({c for c in among or () if c in known}))
    if len(candidates) == 1:
        return candidates[0]
    language, confidence = _model_for(candidates).classify(text)
    if confidence < MIN_CONFIDENCE:
        return None
    return str(language)
