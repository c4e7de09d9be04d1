"""PII scanner: detection per entity, near-misses, presidio equivalence, no network."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import textwrap
import time

import pytest

from lictor.enforcement.pii import (
    ENTITY_PRIORITY,
    SUPPORTED_ENTITIES,
    PiiMatch,
    PiiScanner,
    build_recognizers,
)
from lictor.enforcement.pii import scanner as scanner_module

CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CN_ID_CHECK = "10X98765432"


def cn_id_check(first17: str) -> str:
    return CN_ID_CHECK[sum(int(d) * w for d, w in zip(first17, CN_ID_WEIGHTS, strict=True)) % 11]


def luhn_check_digit(body: str) -> str:
    """The digit that makes `body + digit` pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    return luhn_check_digit(number[:-1]) == number[-1]


UNIONPAY = "622202123456789012" + luhn_check_digit("622202123456789012")  # 19 digits
UNIONPAY_GROUPED = " ".join(UNIONPAY[i : i + 4] for i in range(0, 19, 4))


@pytest.fixture(scope="module")
def scanner() -> PiiScanner:
    return PiiScanner(SUPPORTED_ENTITIES)


def found(scanner: PiiScanner, text: str) -> list[tuple[str, str]]:
    return [(m.entity, text[m.start : m.end]) for m in scanner.scan(text)]


def test_sample_values_are_what_the_tests_claim() -> None:
    assert cn_id_check("11010519491231002") == "X"
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert luhn_ok(UNIONPAY) and len(UNIONPAY) == 19
    assert UNIONPAY_GROUPED.count(" ") == 4


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        (
            "Please reply to jane.doe@example.com by Friday.",
            "EMAIL_ADDRESS",
            "jane.doe@example.com",
        ),
        (
            "cc: ops-team+alerts@mail.example.co.uk",
            "EMAIL_ADDRESS",
            "ops-team+alerts@mail.example.co.uk",
        ),
        ("Charge it to 4111 1111 1111 1111, thanks.", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("Card number 4111-1111-1111-1111 expires 09/27.", "CREDIT_CARD", "4111-1111-1111-1111"),
        ("use 4111111111111111 for the test order", "CREDIT_CARD", "4111111111111111"),
        (
            "Wire it to GB82 WEST 1234 5698 7654 32 today.",
            "IBAN_CODE",
            "GB82 WEST 1234 5698 7654 32",
        ),
        (
            "I want my deposit in DE89370400440532013000 2 days from now",
            "IBAN_CODE",
            "DE89370400440532013000",
        ),
        ("The server at 192.168.10.24 is down.", "IP_ADDRESS", "192.168.10.24"),
        (
            "Ping fe80::1ff:fe23:4567:890a from the bastion.",
            "IP_ADDRESS",
            "fe80::1ff:fe23:4567:890a",
        ),
        ("listen on 2001:db8::8a2e:370:7334 please", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
        ("My SSN is 536-90-4399.", "US_SSN", "536-90-4399"),
        ("身份证号 11010519491231002X 已提交", "CN_RESIDENT_ID", "11010519491231002X"),
        ("ID: 11010519491231002x", "CN_RESIDENT_ID", "11010519491231002x"),
        ("我的手机号是13812345678，请联系", "CN_MOBILE", "13812345678"),
        ("call +86 138 1234 5678 after lunch", "CN_MOBILE", "+86 138 1234 5678"),
        ("or 8613912345678 on weekends", "CN_MOBILE", "8613912345678"),
        ("Call me on +44 20 7946 0958 tomorrow.", "PHONE_NUMBER", "+44 20 7946 0958"),
        ("Office: (212) 555-0199.", "PHONE_NUMBER", "(212) 555-0199"),
        ("Mobile +1-212-555-0199 any time", "PHONE_NUMBER", "+1-212-555-0199"),
        ("fax 212.555.0199", "PHONE_NUMBER", "212.555.0199"),
        (f"银行卡 {UNIONPAY_GROUPED} 已绑定", "CN_BANK_CARD", UNIONPAY_GROUPED),
        (f"card {UNIONPAY} on file", "CN_BANK_CARD", UNIONPAY),
    ],
)
def test_detects_entity_in_sentence(
    scanner: PiiScanner, text: str, entity: str, value: str
) -> None:
    assert found(scanner, text) == [(entity, value)]


def test_match_fields_and_scores(scanner: PiiScanner) -> None:
    text = "mail jane.doe@example.com, ssn 536-90-4399"
    assert scanner.scan(text) == [
        PiiMatch("EMAIL_ADDRESS", 5, 25, 1.0),  # validated: score 1.0
        PiiMatch("US_SSN", 31, 42, 0.5),  # pattern score, invalidate_result passed
    ]


def test_several_entities_sorted_and_disjoint(scanner: PiiScanner) -> None:
    text = (
        "Hi, it's Jane (jane.doe@example.com). Please refund card 4111 1111 1111 1111 "
        "and call me on +44 20 7946 0958; my office IP is 10.20.30.40."
    )
    assert found(scanner, text) == [
        ("EMAIL_ADDRESS", "jane.doe@example.com"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("PHONE_NUMBER", "+44 20 7946 0958"),
        ("IP_ADDRESS", "10.20.30.40"),
    ]
    matches = scanner.scan(text)
    assert all(a.end <= b.start for a, b in itertools.pairwise(matches))


@pytest.mark.parametrize(
    "text",
    [
        "Charge 4111 1111 1111 1112 instead.",  # fails Luhn
        "身份证 110105194912310021",  # wrong check character (X expected)
        "Your order number is ORD-2024-000123, it ships Tuesday.",
        "We upgraded to version 1.2.3.4.5 last night.",
        "Meeting on 2024-07-15 at 10:30, room 4.12, budget $1,249.99.",
        "The quick brown fox jumps over the lazy dog.",
        "",
    ],
)
def test_near_misses_are_not_detected(scanner: PiiScanner, text: str) -> None:
    assert found(scanner, text) == []


def test_cn_id_with_impossible_date_is_rejected_despite_valid_checksum(
    scanner: PiiScanner,
) -> None:
    body = "11010519490231002"  # 31 February
    assert found(scanner, f"id {body}{cn_id_check(body)}") == []
    good = "11010519491231002"
    assert found(scanner, f"id {good}{cn_id_check(good)}") == [
        ("CN_RESIDENT_ID", f"{good}{cn_id_check(good)}")
    ]


def test_unionpay_failing_luhn_is_not_a_bank_card(scanner: PiiScanner) -> None:
    wrong = UNIONPAY[:-1] + str((int(UNIONPAY[-1]) + 1) % 10)
    assert "CN_BANK_CARD" not in {e for e, _ in found(scanner, f"card {wrong} on file")}


def test_mobile_inside_longer_number_is_not_a_mobile(scanner: PiiScanner) -> None:
    assert "CN_MOBILE" not in {e for e, _ in found(scanner, "ref 9913812345678 ok")}


def test_overlap_ties_go_to_entity_priority(scanner: PiiScanner) -> None:
    # Same span and score for PHONE_NUMBER and CN_MOBILE, and for CREDIT_CARD and a 16-digit
    # CN_BANK_CARD: the priority list decides.
    assert found(scanner, "+86 138 1234 5678") == [("CN_MOBILE", "+86 138 1234 5678")]
    card16 = "622202123456789" + luhn_check_digit("622202123456789")
    assert found(scanner, f"pay {card16} now") == [("CREDIT_CARD", card16)]
    assert ENTITY_PRIORITY.index("CREDIT_CARD") < ENTITY_PRIORITY.index("CN_BANK_CARD")


def test_min_score_filters_unvalidated_matches() -> None:
    strict = PiiScanner(["US_SSN", "EMAIL_ADDRESS"], min_score=0.6)
    text = "ssn 536-90-4399 mail a.b@example.org"
    assert [m.entity for m in strict.scan(text)] == ["EMAIL_ADDRESS"]


def test_only_requested_entities() -> None:
    only_email = PiiScanner(["EMAIL_ADDRESS"])
    assert only_email.entities == ("EMAIL_ADDRESS",)
    text = "x@example.com 4111 1111 1111 1111"
    assert [m.entity for m in only_email.scan(text)] == ["EMAIL_ADDRESS"]


def test_unknown_entity_raises_and_lists_supported() -> None:
    with pytest.raises(ValueError, match="PASSPORT") as err:
        PiiScanner(["EMAIL_ADDRESS", "PASSPORT"])
    assert all(name in str(err.value) for name in SUPPORTED_ENTITIES)


def _reference(text: str, recognizers: list, min_score: float = 0.5) -> list[PiiMatch]:
    """presidio's own analyze per recognizer, then the documented overlap resolution."""
    results = [
        (r.start, r.end, r.score, ENTITY_PRIORITY.index(r.entity_type), r.entity_type)
        for rec in recognizers
        for r in rec.analyze(text, rec.supported_entities)
        if r.score >= min_score
    ]
    results.sort(key=lambda f: (f[0] - f[1], -f[2], f[3], f[0]))
    kept: list[tuple[int, int, float, int, str]] = []
    for cand in results:
        if all(cand[1] <= k[0] or k[1] <= cand[0] for k in kept):
            kept.append(cand)
    return [PiiMatch(e, s, end, sc) for s, end, sc, _, e in sorted(kept)]


def test_agrees_with_presidio_analyze_on_random_text(scanner: PiiScanner) -> None:
    """The run-based scan must find exactly what presidio's full-text analyze finds."""
    recognizers = build_recognizers(SUPPORTED_ENTITIES)
    rnd = random.Random(20240615)
    alphabet = "0123456789" * 6 + "   --..++()@:/%_abcdefXxGBDEABCDEFGH，。２５电话\u00a0\u212aé"
    pieces = [
        *["4111 1111 1111 1111", "jane.doe@example.com", "+44 20 7946 0958", "(212) 555-0199"],
        *["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "192.168.1.10"],
        *["fe80::1ff:fe23:4567:890a", "::ffff:10.0.0.1", "536-90-4399", "11010519491231002X"],
        *["13812345678", "+86 138 1234 5678", "1.2.3.4.5", "a@b.co", "2001:db8::1"],
        *("+33 1 23 45 67 89", UNIONPAY, UNIONPAY_GROUPED),
    ]
    for _ in range(400):
        parts = []
        for _ in range(rnd.randint(1, 6)):
            if rnd.random() < 0.4:
                piece = rnd.choice(pieces)
                if rnd.random() < 0.3:  # a near-miss: one character changed
                    k = rnd.randrange(len(piece))
                    piece = piece[:k] + rnd.choice(alphabet) + piece[k + 1 :]
                parts.append(piece)
            else:
                parts.append("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 25))))
        text = rnd.choice(("", " ")).join(parts)
        assert scanner.scan(text) == _reference(text, recognizers), text


def test_values_repeated_in_one_text_agree_with_presidio(scanner: PiiScanner) -> None:
    """A run seen again in the same text is looked up once per call: the same value in the
    same surroundings, in other surroundings (a lookbehind that now fails), and at the ends."""
    recognizers = build_recognizers(SUPPORTED_ENTITIES)
    texts = [
        "mail a@example.com, mail a@example.com, mail a@example.com",
        "+44 20 7946 0958 and +44 20 7946 0958 but x+44 20 7946 0958 and a+44 20 7946 0958",
        "call (212) 555-0199 or (212) 555-0199.(212) 555-0199-(212) 555-0199",
        "4111 1111 1111 1111 4111 1111 1111 1111 " * 3 + "4111 1111 1111 1111",
        "a@b.co a@b.co" + " a@b.co" * 5,
    ]
    for text in texts:
        fresh = PiiScanner(SUPPORTED_ENTITIES)
        assert fresh.scan(text) == _reference(text, recognizers), text
        assert scanner.scan(text) == _reference(text, recognizers), text


def test_no_network_from_import_to_scan() -> None:
    """A fresh interpreter with every socket connection refused imports, builds and scans."""
    code = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise AssertionError("network access attempted")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from lictor.enforcement.pii import SUPPORTED_ENTITIES, PiiScanner

        scanner = PiiScanner(SUPPORTED_ENTITIES)
        text = "write to jane.doe@example.com or +44 20 7946 0958"
        print(sorted(m.entity for m in scanner.scan(text)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['EMAIL_ADDRESS', 'PHONE_NUMBER']"


def test_no_network_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    scanner = PiiScanner(["EMAIL_ADDRESS"])
    assert found(scanner, "ask bob@example.org") == [("EMAIL_ADDRESS", "bob@example.org")]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("卡号4111111111111111，谢谢", "CREDIT_CARD", "4111111111111111"),
        ("社保号536-90-4399。", "US_SSN", "536-90-4399"),
        ("服务器10.20.30.40上", "IP_ADDRESS", "10.20.30.40"),
    ],
)
def test_numbers_right_after_chinese_text_are_found(text: str, entity: str, value: str) -> None:
    """Presidio's Unicode `\\b` sees no boundary between 号 and a digit; lictor's ASCII one does."""
    found = [(m.entity, text[m.start : m.end]) for m in PiiScanner([entity]).scan(text)]
    assert found == [(entity, value)]


def test_ascii_letters_still_delimit_numbers() -> None:
    assert PiiScanner(["CREDIT_CARD"]).scan("abc4111111111111111") == []


def _lookbehinds(pattern: str) -> list[str]:
    """The body of every lookbehind group in a regex source."""
    bodies = []
    for start in (i for i in range(len(pattern)) if pattern.startswith(("(?<=", "(?<!"), i)):
        if start and pattern[start - 1] == "\\":
            continue
        depth, i = 0, start
        while i < len(pattern):
            if pattern[i] == "\\":
                i += 2
                continue
            depth += {"(": 1, ")": -1}.get(pattern[i], 0)
            if depth == 0:
                bodies.append(pattern[start + 4 : i])
                break
            i += 1
    return bodies


def test_every_lookbehind_fits_the_run_cache_margin(scanner: PiiScanner) -> None:
    """A run's matches are cached by the run plus LOOKBEHIND_MARGIN characters before it;
    no pattern may look further back, or a cached run could answer for another context."""
    import re._parser as sre_parse  # re's own parser measures a pattern's width

    widths = {}
    for _, recognizers, _ in scanner._groups:
        for rec in recognizers:
            for compiled, *_ in rec.patterns:
                for body in _lookbehinds(compiled.pattern):
                    widths[body] = sre_parse.parse(body).getwidth()[1]
    assert widths, "the patterns have lookbehinds: the parser above must find them"
    assert max(widths.values()) <= scanner_module.LOOKBEHIND_MARGIN, widths


@pytest.mark.parametrize("before", ["", " ", "x", "+", "9", "tel:", "1.", "ab-"])
def test_a_cached_run_answers_only_for_the_same_surroundings(before: str) -> None:
    """The same value after different characters: each context scanned as presidio would,
    though an earlier context already put the run in the cache."""
    fresh = PiiScanner(SUPPORTED_ENTITIES)
    recognizers = build_recognizers(SUPPORTED_ENTITIES)
    for value in ("+44 20 7946 0958", "536-90-4399", "192.168.1.10", "jane.doe@example.com"):
        for text in (f"call {value} now", f"{before}{value}", f"{before}{value}.5", f"{value}"):
            assert fresh.scan(text) == _reference(text, recognizers), text


def test_email_host_verdicts_match_tldextract() -> None:
    """Email validation remembers tldextract's verdict per host; it must be the same verdict
    for every address on that host, as tldextract gives for the whole match."""
    from lictor.enforcement.pii.recognizers import _OFFLINE_TLD, OfflineEmailRecognizer

    rec = OfflineEmailRecognizer()
    addresses = ["a@example.com", "b.c@example.com", "x@localhost", "y@example.invalidtld",
                 "z@sub.example.co.uk", "q@co.uk", "http://u@example.com/x", "w@192.168.0.1",
                 "v@example.com.", "t@EXAMPLE.COM", "s@exa_mple.com:8080"]
    for _ in range(2):  # the second pass answers from the cache
        for address in addresses:
            assert rec.validate_result(address) == (_OFFLINE_TLD(address).fqdn != ""), address


def test_emails_agree_with_presidio_in_long_runs() -> None:
    """Email runs are matched in RE2 (ASCII text) or around each "@" (other text): the same
    matches as presidio's analyze, for local parts up to 64 and domains up to 255
    characters, in runs that hold several addresses and long stretches of address
    characters (the runs the reach applies to: joined by "@", which no local part holds)."""
    email = PiiScanner(["EMAIL_ADDRESS"])
    recognizers = build_recognizers(["EMAIL_ADDRESS"])
    rnd = random.Random(20261122)
    long_runs = 0
    for alphabet in ("ab-._+x", "ab-._é+ü"):
        for _ in range(300):
            parts = []
            for _ in range(rnd.randint(2, 9)):
                local = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 64)))
                host = "".join(rnd.choice("abc-.") for _ in range(rnd.randint(0, 40)))
                parts.append(f"{local}@{host}{rnd.choice(['.com', '.de', '.io', ''])}")
            text = rnd.choice(["@", " ", "@@"]).join(parts)
            assert email.scan(text) == _reference(text, recognizers), text
            long_runs += len(text) > 320 and " " not in text
    assert long_runs > 100


@pytest.mark.parametrize("unit", ["a-a.", "a@a.", "a@", "é-é.", "é@é."])
def test_email_scan_stays_linear_on_hostile_runs(unit: str) -> None:
    """presidio's email pattern backtracks quadratically over a long local part (8 KB of
    "a-a." before an "@" took 7.5 s): 32 KB of each shape stays far below that."""
    email = PiiScanner(["EMAIL_ADDRESS"])
    text = unit * (32_768 // len(unit)) + "@b"
    started = time.perf_counter()
    email.scan(text)
    assert time.perf_counter() - started < 3.0
