"""Names the rule language accepts: PII entity types and OWASP ids.

Kept here (not in enforcement) so a rule file naming an unknown entity fails at load,
with its file and line; enforcement's recognizers must cover exactly this list.
"""

PII_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "CN_RESIDENT_ID",
    "CN_MOBILE",
    "CN_BANK_CARD",
)
