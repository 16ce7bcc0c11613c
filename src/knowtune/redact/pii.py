"""Personal data in text: e-mail addresses and phone numbers.

Phone numbers are checked against each country's numbering plan with `phonenumbers`
(Google's libphonenumber), which tells a real number from a run of digits far better than
any pattern; a cheap pattern picks the candidates it is asked about, since parsing every
digit run of a source file would be slow and find version numbers and dates.
"""

from __future__ import annotations

import re

import phonenumbers

from .finding import Finding, merge

# The domain of an address, unless followed by ".word" or "(": then it is code (x@self.weight.T,
# q@k.transpose(...)). Matching from the "@" and reading the local part backwards is some
# twenty times faster than a pattern that starts with the local part, tried at every letter.
EMAIL_DOMAIN = re.compile(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w\-(]|\.\w)")
EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}$")
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}" + EMAIL_DOMAIN.pattern)  # a whole value, e.g. an author field
# Two-letter country domains and the common generic ones, plus the reserved and internal
# names companies use. A full list of top-level domains would also admit every attribute name
# of a matrix product in Python (a@self.weight), so rarer new domains are missed instead.
TLDS = {
    "com", "org", "net", "edu", "gov", "mil", "int", "io", "ai", "dev", "app", "info", "biz", "me", "tech",
    "cloud", "xyz", "online", "site", "email", "mail", "name", "pro", "mobi", "asia", "page", "blog", "systems",
    "solutions", "company", "team", "tools", "software", "services", "group", "global", "network", "digital",
    "studio", "agency", "science", "academy", "museum", "aero", "coop", "jobs", "travel", "example", "invalid",
    "test", "localhost", "local", "internal", "corp", "lan", "intranet", "home",
}
PSEUDONYM_EMAIL = re.compile(r"person-[0-9a-f]{8}@example\.invalid", re.IGNORECASE)  # already redacted

# Candidates, each to be checked by parse_phone. None starts with a look-behind: a pattern that
# does is tried at every position of the text, ten times slower; _bounded checks the edges instead.
PHONE_CANDIDATES = [
    # International: +44 20 7946 0958, +1 (415) 555-0132, +4915123456789
    re.compile(r"\+\d{1,3}(?:[ .\-]?\(?\d{1,5}\)?){1,6}"),
    # North American: (415) 555-0132, 415-555-0132, 415.555.0132
    re.compile(r"\(\d{3}\) ?\d{3}[ .\-]\d{4}"),
    re.compile(r"\d{3}[ .\-]\d{3}[ .\-]\d{4}"),
    # With a trunk 0: 020 7946 0958, 030 901820, 06 12 34 56 78
    re.compile(r"0\d{1,4}(?:[ \-/]\d{2,8}){1,4}"),
]
# Where a national number starting with 0 is looked up, in this order.
TRUNK_REGIONS = ("GB", "DE", "FR", "NL", "BE", "CH", "AT", "IT", "ES", "SE", "AU", "NZ", "JP")
_LAST_GROUP = re.compile(r" \(?\d+\)?$")  # only a group after a space can be a next number
_NOT_IDD = re.compile(r"00\D")  # 0044 20... dials abroad; "00 01 02" is a list of numbers
_ONE_DIGIT_END = re.compile(r"\D\d$")  # +35236450.6 is a decimal; numbers end in a group of two or more
_DATE = re.compile(r"\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}")


def find_pii(text: str) -> list[Finding]:
    """E-mail addresses and phone numbers in `text`, non-overlapping, sorted by start."""
    found = []
    for m in EMAIL_DOMAIN.finditer(text):
        local = EMAIL_LOCAL.search(text, max(0, m.start() - 64), m.start())
        if local and _is_address(text, local.start(), m):
            found.append((1, Finding("email", local.start(), m.end())))
    for pattern in PHONE_CANDIDATES:
        for m in pattern.finditer(text):
            if (not _bounded(text, m) or _DATE.fullmatch(m.group()) or _NOT_IDD.match(m.group())
                    or _ONE_DIGIT_END.search(m.group())):
                continue
            # The pattern may have run on into a following number ("+44 20 7946 0958 24 hours"):
            # drop trailing groups until the rest is a number, or too short to be one.
            value, shorter = None, m.group()
            while shorter != value and sum(c.isdigit() for c in shorter) >= 8:
                value = shorter
                if parse_phone(value) is not None:
                    found.append((0, Finding("phone", m.start(), m.start() + len(value))))
                    break
                shorter = _LAST_GROUP.sub("", value)
    return merge(found)


def _is_address(text: str, start: int, domain: re.Match) -> bool:
    if domain.group(1).lower() not in TLDS and len(domain.group(1)) != 2:
        return False
    address = text[start:domain.end()]
    if PSEUDONYM_EMAIL.fullmatch(address) or address.startswith((".", "-")):
        return False
    # git@github.com:org/repo.git is a remote, not a person.
    end = domain.end()
    return not (address.lower().startswith("git@")
                or (text.startswith(":", end) and end + 1 < len(text) and not text[end + 1].isspace()))


def _bounded(text: str, m: re.Match) -> bool:
    """Not part of a longer number, word, version or date, nor one of a list of numbers."""
    before = text[max(0, m.start() - 2):m.start()].rjust(2)
    after = text[m.end():m.end() + 2].ljust(2)
    return not (before[1].isalnum() or before[1] in "_+-./" or before[0].isdigit()) and not (
        after[0].isalnum() or after[0] == "_" or (after[0] in " -./" and after[1].isdigit()))


def parse_phone(value: str) -> phonenumbers.PhoneNumber | None:
    """The valid phone number `value` writes, or None; national numbers are tried in the
    regions whose format they have (North American without a leading 0, TRUNK_REGIONS with)."""
    digits = sum(c.isdigit() for c in value)
    if not 8 <= digits <= 15:
        return None
    regions = (None,) if value.startswith("+") else TRUNK_REGIONS if value.startswith("0") else ("US",)
    for region in regions:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return number
    return None


def normal_email(value: str) -> str:
    return value.strip().lower()


def normal_phone(value: str) -> str:
    """+442079460958 for every way of writing that number, so its pseudonym is one."""
    number = parse_phone(value)
    if number is None:
        return re.sub(r"\D", "", value)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
