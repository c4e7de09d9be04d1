"""presidio's recognizers load without spaCy (start-up), and spaCy still works afterwards."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from lictor.enforcement.pii.recognizers import SUPPORTED_ENTITIES
from lictor.enforcement.pii.scanner import PiiScanner
found = PiiScanner(SUPPORTED_ENTITIES).scan("mail jane.doe@example.com or call +1 415 555 0132")
print(sorted({m.entity for m in found}))
print("spacy" in sys.modules, "thinc" in sys.modules)
import spacy
print(type(spacy.blank("en")).__name__)
"""


def test_scanner_imports_without_spacy_and_spacy_stays_usable() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0] == "['EMAIL_ADDRESS', 'PHONE_NUMBER']"
    assert out[1] == "False False"  # no spaCy, no thinc loaded by lictor's PII scanner
    assert out[2] == "English"  # a later `import spacy` gets the real one
