"""PII detection (presidio recognizers, fast scan) and reversible per-request masking."""

from lictor.enforcement.pii.placeholder_vault import PLACEHOLDER_RE, PlaceholderVault, VaultDelta
from lictor.enforcement.pii.recognizers import (
    ENTITY_LABELS,
    SUPPORTED_ENTITIES,
    build_recognizers,
    luhn_valid,
)
from lictor.enforcement.pii.scanner import ENTITY_PRIORITY, PiiMatch, PiiScanner
from lictor.enforcement.pii.stream_restorer import StreamRestorer

__all__ = [
    "ENTITY_LABELS",
    "ENTITY_PRIORITY",
    "PLACEHOLDER_RE",
    "SUPPORTED_ENTITIES",
    "PiiMatch",
    "PiiScanner",
    "PlaceholderVault",
    "StreamRestorer",
    "VaultDelta",
    "build_recognizers",
    "luhn_valid",
]
