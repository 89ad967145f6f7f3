"""Remove personal data from free text before it is stored: pure, no I/O.

A comment may hold what identifies its writer (an e-mail address, a phone number, a link to a
profile, a bank account). Those are replaced with PLACEHOLDER, and the kinds found are reported
so the customer can be told what was removed and why. Everything else stays exactly as typed:
prices, dates, times, small numbers and postcodes are what feedback is about.
"""

import re
import unicodedata
from dataclasses import dataclass

PLACEHOLDER = "[removed]"
KINDS = ("email", "url", "iban", "phone")

# Separators a person types inside a number: spaces (also the non-breaking one), slash,
# hyphens, dots, parentheses.
_SEP = r"[ \t\u00a0\u202f./\-\u2010-\u2013()]"

_EMAIL = re.compile(
    r"(?<![\w.+%-])[\w.+%-]+"
    r"(?:@|\s*[(\[{]\s*(?:at|ät|@)\s*[)\]}]\s*)"  # name@host, also "name (at) host"
    r"[^\W_](?:[\w-]*[^\W_])?"
    r"(?:(?:\.|\s*[(\[{]\s*(?:dot|punkt)\s*[)\]}]\s*)[^\W_](?:[\w-]*[^\W_])?)+",
    re.IGNORECASE,
)
# Top-level domains people type in this region. A wider list would eat prose such as "z.B.";
# the ones that are also English or Spanish words count only with a path ("coffee.It was").
_TLDS = (
    "com|net|org|info|biz|eu|at|de|ch|li|fr|nl|lu|pl|cz|sk|hu|si|hr|dk|se|fi|co\\.uk|uk|io|"
    "app|dev|shop|online|site|store|wien|berlin|tirol|ly|gl|tv|ru"
)
_WORD_TLDS = "it|es|me|to|us|be|no|co"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_URL = re.compile(
    rf"""
    (?:https?://|ftp://|www\.)[^\s<>"']+                          # with a scheme or www.
    | (?<![\w@.-])(?:{_LABEL}\.)+(?:{_TLDS})(?![\w-])             # a bare domain name
      (?::\d{{2,5}})?(?:/[^\s<>"']*)?
    | (?<![\w@.-])(?:{_LABEL}\.)+(?:{_WORD_TLDS})/[^\s<>"']*       # ... or with a path
    """,
    re.IGNORECASE | re.VERBOSE,
)
# IBAN: country, check digits, then groups of four letters or digits, spaced or not.
_IBAN = re.compile(
    r"\b[A-Z]{2}\d{2}"
    r"(?:(?:[ \u00a0][A-Z0-9]{4}){2,7}(?:[ \u00a0][A-Z0-9]{1,3})?|[A-Z0-9]{11,30})\b",
    re.IGNORECASE,
)
# Anything that could be a phone number: digits with separators, optionally a leading + or (.
_NUMBER_RUN = re.compile(rf"\+?\(?\d(?:{_SEP}{{0,3}}\d)*\)?")
_CHUNK = re.compile(r"\+?\(?\d+\)?")

# What must never be mistaken for a phone number is shielded before phone numbers are looked
# for. A date inside a dotted number ("0660.12.11.67") is no date, hence the lookarounds.
_NOT_IN_NUMBER_BEFORE = r"(?<![\d./-])"
_NOT_IN_NUMBER_AFTER = r"(?![\d]|[./-]\d)"
_DATE = re.compile(
    rf"{_NOT_IN_NUMBER_BEFORE}(?:"
    r"(?P<d>\d{1,2})\.\s?(?P<m>\d{1,2})\.(?:\s?(?:\d{4}|\d{2})\b)?"  # 23.11.2026, 23.11.
    r"|\d{4}-(?P<im>\d{2})-(?P<id>\d{2})"  # 2026-11-23
    r"|(?P<sd>\d{1,2})/(?P<sm>\d{1,2})/(?:\d{4}|\d{2})"  # 23/11/2026
    rf"){_NOT_IN_NUMBER_AFTER}"
)
_TIME = re.compile(r"\b\d{1,2}(?::\d{2}(?::\d{2})?|h\d{2}|\.\d{2}\s?Uhr)\b(?!:)", re.IGNORECASE)
_PRICE = re.compile(
    r"(?:€|EUR|CHF|\$|£)\s?\d+(?:[.,]\d{1,2})?"
    r"|(?<![\d.,])\d+(?:[.,]\d{1,2})?\s?(?:€|\$|£|(?:EUR|Euro|CHF|ct|Cent)\b)",
    re.IGNORECASE,
)
# A shielded span becomes one private-use character (no digit in it to join a number).
_SHIELD_BASE = 0xF0000
_SHIELDED = re.compile("[\U000f0000-\U000fffff]")
_TRAILING = ".,;:!?)"


@dataclass(frozen=True)
class Scrubbed:
    text: str
    removed: tuple[str, ...]  # the kinds found, in KINDS order; empty when nothing was removed


def normalise(text: str) -> str:
    """NFC, no control characters, at most one blank line in a row, no outer whitespace."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c)[0] != "C")
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def scrub(text: str) -> Scrubbed:
    """Normalise the text, then replace e-mail addresses, URLs, IBANs and phone numbers."""
    found: set[str] = set()
    text = normalise(text)
    # Order matters: an e-mail address contains a domain, and an IBAN a run of digits.
    text = _replace(text, _EMAIL, "email", found)
    text = _replace(text, _URL, "url", found)
    text = _replace_ibans(text, found)
    text = _replace_phones(text, found)
    return Scrubbed(text, tuple(k for k in KINDS if k in found))


def _replace(text: str, pattern: re.Pattern[str], kind: str, found: set[str]) -> str:
    def one(match: re.Match[str]) -> str:
        value = match.group()
        # A sentence's full stop or a closing bracket after a link is not part of it.
        kept = len(value) - len(value.rstrip(_TRAILING)) if kind == "url" else 0
        found.add(kind)
        return PLACEHOLDER + value[len(value) - kept :]

    return pattern.sub(one, text)


def _replace_ibans(text: str, found: set[str]) -> str:
    def one(match: re.Match[str]) -> str:
        groups = match.group().split()
        # The word after an IBAN can look like one more group ("... 3201 Dank"): a real
        # trailing group carries a digit.
        while len(groups) > 3 and not any(c.isdigit() for c in groups[-1]):
            groups.pop()
        iban = " ".join(groups)
        found.add("iban")
        return PLACEHOLDER + match.group()[len(iban) :]

    return _IBAN.sub(one, text)


def _replace_phones(text: str, found: set[str]) -> str:
    shielded: list[str] = []

    def shield(match: re.Match[str]) -> str:
        if match.re is _DATE and not _is_date(match):
            return match.group()
        shielded.append(match.group())
        return chr(_SHIELD_BASE + len(shielded) - 1)

    for pattern in (_DATE, _TIME, _PRICE):
        text = pattern.sub(shield, text)

    out: list[str] = []
    position = 0
    for run in _NUMBER_RUN.finditer(text):
        for start, end in _phones_within(run.group()):
            out += [text[position : run.start() + start], PLACEHOLDER]
            position = run.start() + end
            found.add("phone")
    out.append(text[position:])
    return _SHIELDED.sub(lambda m: shielded[ord(m.group()) - _SHIELD_BASE], "".join(out))


def _is_date(match: re.Match[str]) -> bool:
    parts = match.groupdict()
    day = parts["d"] or parts["id"] or parts["sd"]
    month = parts["m"] or parts["im"] or parts["sm"]
    return day is not None and month is not None and 1 <= int(day) <= 31 and 1 <= int(month) <= 12


def _phones_within(run: str) -> list[tuple[int, int]]:
    """The spans of phone numbers inside a run of digits and separators.

    One run may hold more than a number ("table 12 0660 1234567", or two numbers in a row), so
    the longest phone-like stretch of whole digit groups is taken from each group on.
    """
    chunks = [(m.start(), m.end()) for m in _CHUNK.finditer(run)]
    digits = [0]  # digits[i]: how many digits the chunks before chunk i hold
    for start, end in chunks:
        digits.append(digits[-1] + sum(c.isdigit() for c in run[start:end]))
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(chunks):
        lowest, highest = _digit_range(run[chunks[i][0] :])
        for j in range(len(chunks) - 1, i - 1, -1):
            if lowest <= digits[j + 1] - digits[i] <= highest:
                spans.append((chunks[i][0], chunks[j][1]))
                i = j
                break
        i += 1
    return spans


def _digit_range(candidate: str) -> tuple[int, int]:
    """How many digits a phone number starting like this has; (1, 0) when none can."""
    if candidate.startswith("+"):
        return 8, 15  # E.164 allows at most 15 digits
    bare = candidate.lstrip("(")
    if bare.startswith("00"):
        return 10, 17
    # National numbers start with the trunk prefix 0: (030) 123456, 0660/123 45 67.
    if bare.startswith("0"):
        return 7, 14
    return 1, 0
