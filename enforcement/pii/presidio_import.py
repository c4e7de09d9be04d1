"""Import presidio's pattern recognizers without importing spaCy (about half of start-up).

`import presidio_analyzer` imports its NLP engines, and with them spaCy and thinc, though
lictor only uses the pattern recognizers (regexes, validation, scores), never an NLP engine.
While presidio loads, inert stand-ins answer for `spacy` and `thinc`; they are taken out of
`sys.modules` afterwards, so a later `import spacy` gets the real one. If spaCy is already
loaded, presidio simply gets it. Consequence: presidio's NLP engines (`AnalyzerEngine`) are
unusable in a process that imported presidio through here; lictor never builds one.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

STUBBED = ("spacy", "thinc")


def _decorate(*args: Any, **kwargs: Any) -> Any:
    """A stand-in's call: as a decorator, return what it decorates; else itself."""
    if len(args) == 1 and not kwargs and callable(args[0]):
        return args[0]
    return _decorate


class _StandInMeta(type):
    """Classes that answer any attribute (`Language.factory`) and any call (`Vocab()`)."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _stand_in(name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _decorate(*args, **kwargs)


def _stand_in(name: str) -> type:
    return _StandInMeta(name, (), {"__module__": "lictor.presidio_import"})


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = _stand_in(name)
        setattr(self, name, value)
        return value


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] in STUBBED:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StandInModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


@contextmanager
def _without_spacy() -> Iterator[None]:
    if any(name in sys.modules for name in STUBBED):
        yield  # the real ones are loaded already: presidio gets them
        return
    finder = _StandInFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n, m in sys.modules.items() if isinstance(m, _StandInModule)]:
            del sys.modules[name]


with _without_spacy():
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        UsSsnRecognizer,
    )

__all__ = ["CreditCardRecognizer", "EmailRecognizer", "IbanRecognizer", "IpRecognizer",
           "Pattern", "PatternRecognizer", "UsSsnRecognizer"]
