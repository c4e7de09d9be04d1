"""Fuzz targets for reversible masking: restore(mask(x)) == x for any text and matches,
any chunking of a stream restores the same, and a vault never yields another vault's values
(placeholder forgery)."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from lictor.enforcement.pii.placeholder_vault import PlaceholderVault
from lictor.enforcement.pii.scanner import PiiMatch
from lictor.enforcement.pii.stream_restorer import StreamRestorer

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS")
pieces = st.one_of(st.text(alphabet="ab <>_1EMAIL_ADDRESS", max_size=12), st.text(max_size=8),
                   st.sampled_from(["<EMAIL_ADDRESS_1>", "<PHONE_NUMBER_2>", "<EMAIL_",
                                    "<EMAIL_ADDRESS_1", "<>"]))


@st.composite
def masked_inputs(draw: st.DrawFn, values: str = "xyz019@.-") -> tuple[str, list[PiiMatch]]:
    """A text made of plain pieces and PII values, with a match for each value."""
    parts, matches, pos = [], [], 0
    for _ in range(draw(st.integers(0, 6))):
        plain = draw(pieces)
        parts.append(plain)
        pos += len(plain)
        if draw(st.booleans()):
            value = draw(st.text(alphabet=values, min_size=1, max_size=10))
            entity = draw(st.sampled_from(ENTITIES))
            matches.append(PiiMatch(entity, pos, pos + len(value), 1.0))
            parts.append(value)
            pos += len(value)
            parts.append(" ")  # values are whole tokens
            pos += 1
    return "".join(parts), matches


@given(masked_inputs())
def test_restore_undoes_mask(case: tuple[str, list[PiiMatch]]) -> None:
    text, matches = case
    vault = PlaceholderVault()
    masked = vault.mask(text, matches)
    assert vault.restore(masked) == text
    # every matched value went into the vault, and the masked text is its placeholders
    assert {text[m.start:m.end] for m in matches} <= set(vault.originals().values())


@given(masked_inputs(), st.lists(st.integers(0, 200), max_size=8))
def test_any_chunking_restores_the_same(case: tuple[str, list[PiiMatch]], cuts: list[int]) -> None:
    text, matches = case
    vault = PlaceholderVault()
    masked = vault.mask(text, matches)
    bounds = sorted({min(c, len(masked)) for c in cuts})
    chunks = [masked[a:b] for a, b in zip([0, *bounds], [*bounds, len(masked)], strict=True)]
    restorer = StreamRestorer(vault)
    out = "".join(restorer.feed(c) for c in chunks) + restorer.flush()
    assert out == vault.restore(masked) == text


@given(masked_inputs("abc"), masked_inputs("xyz"))
def test_forged_placeholders_never_reveal_another_vaults_values(
        mine: tuple[str, list[PiiMatch]], theirs: tuple[str, list[PiiMatch]]) -> None:
    victim, attacker = PlaceholderVault(), PlaceholderVault()
    victim_masked = victim.mask(*theirs)
    attacker.mask(*mine)
    secret_values = set(victim.originals().values()) - set(attacker.originals().values())
    assume(secret_values)
    # the attacker (or a model) writes the victim's placeholders into its own request
    forged = victim_masked + " " + " ".join(victim.originals())
    leaked = attacker.restore(forged)
    for value in secret_values:
        assert value not in leaked or value in forged
