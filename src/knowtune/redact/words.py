"""Values that are words or stand-ins, not credentials: `drop`, `bearer`, `changeme`, `xxxx`.

A credential is made to be unguessable, so it is random: letters of both cases, digits,
symbols, in no pattern. A value that reads as words names a mode, a type, an enum member or
another variable (`secrets: drop`, `auth="basic"`, `token = api_key_2`): redacting it corrupts
the code or config it sits in and protects nothing. A well-known stand-in password
(`changeme`, `hunter2`, `p@ssw0rd`) is on every list of common passwords, so it gives nothing
away, and it is what tests and examples are full of. The cost, accepted: a real password that
is only dictionary words (`correct-horse-battery-staple`) or one of those stand-ins is left in.
"""

from __future__ import annotations

import re
from collections import Counter

# Separators between the parts of a name or a phrase (snake_case, kebab-case, dotted, env:NAME).
_SEPARATORS = re.compile(r"[_\-./: ]+")
# Within a part, camelCase words and ALLCAPS acronyms: XMLHttpRequest -> XML, Http, Request.
_CAMEL_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
# A version-like part: s3, utf8, sha256, HS256, py311, x86, v1beta1, and numeronyms (k8s, i18n).
_VERSIONISH = re.compile(r"[a-z]{1,5}\d{1,4}|[A-Z]{1,5}\d{1,4}|v\d+(?:alpha|beta|rc)\d*|[a-z]\d{1,2}[a-z]{1,2}")
_VOWELS = set("aeiouyAEIOUY")
_CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-xzB-DF-HJ-NP-TV-XZ]{6}")

# Stand-in passwords of examples, tests and default configs, as a placeholder word (spelt
# plainly or in digits for letters) with at most four digits after it: changeme, password1,
# test1234, s3cr3t, P@ssw0rd, hunter2 (the joke password that stands for any password).
STAND_INS = {
    "password", "passwd", "pass", "pwd", "secret", "changeme", "changeit", "example", "sample", "test", "testing",
    "tester", "demo", "dummy", "fake", "mock", "placeholder", "default", "admin", "administrator", "root", "guest",
    "user", "username", "postgres", "mysql", "redis", "hunter", "foo", "bar", "foobar", "qwerty", "letmein",
    "welcome", "abc", "abcd", "token", "key", "apikey", "secretkey", "mypassword", "mysecret", "yourpassword",
    "supersecret", "topsecret", "notasecret", "insecure",
}
_LEET = str.maketrans("013457@$", "oieastas")
_TRAILING_DIGITS = re.compile(r"\d{1,4}$")


def reads_as_words(value: str, numbers: bool = False) -> bool:
    """Made of words between separators, such as a name or a keyword is: `drop`, `kv-v2`,
    `YOUR_API_KEY`, `ClientCredentials`, `not-a-secret`; with `numbers`, plain numbers may be
    parts too, as in code's variable names (`api_key_2`). A random string of letters breaks into
    one-letter camelCase pieces (`dcTUHZyCnP`) or runs of consonants no word has."""
    parts = [p for p in _SEPARATORS.split(value) if p]
    if not parts:
        return False
    has_digit = any(c.isdigit() for c in value)
    for part in parts:
        if part.isdigit():
            if not numbers:
                return False
        elif _VERSIONISH.fullmatch(part):
            continue
        elif not (part.isascii() and part.isalpha()) or not _is_word(part, has_digit):
            return False
    # Mixed case: the words of camelCase (acronyms aside) are about two-fifths vowels, random
    # letters of both cases a fifth (10 of 52); a quarter tells them apart.
    letters = "".join(w for w in _CAMEL_WORDS.findall(value) if not w.isupper() or len(w) < 3)
    if len(letters) >= 6 and value != value.lower() and value != value.upper():
        return sum(c in "aeiouAEIOU" for c in letters) >= 0.25 * len(letters)
    return True


def _is_word(part: str, has_digit: bool) -> bool:
    words = _CAMEL_WORDS.findall(part)
    # camelCase words have two letters or more, random case flips leave single ones; in a value
    # that has digits as well (a password's mix), three or more (gxNDYS of q33-gxNDYS is not).
    if len(words) > 1 and any(len(w) < (3 if has_digit else 2) for w in words):
        return False
    if len(words) > 1 and any(w.isupper() and len(w) > 5 for w in words):
        return False  # an acronym inside camelCase is short (HTTPS, AWS); GAGHRQJ of GAGHRQJBa is not
    return all(looks_like_word(w) for w in words)


def looks_like_word(w: str) -> bool:
    """A word of five letters or more has a vowel, and no word has six consonants in a row;
    random letters soon break one or the other (khnxhtgk, qzxvbnmk). Acronyms of up to five
    capitals (HTTP, SFTP, HTTPS) need no vowel."""
    if w.isupper() and len(w) <= 5:
        return True
    return not ((len(w) >= 5 and not _VOWELS & set(w)) or _CONSONANT_RUN.search(w))


def is_stand_in(value: str) -> bool:
    """A stand-in password (changeme, Passw0rd, secret123): see STAND_INS."""
    plain = _TRAILING_DIGITS.sub("", _SEPARATORS.sub("", value.lower()))
    return plain.translate(_LEET) in STAND_INS


def is_placeholder_token(value: str) -> bool:
    """A token shape filled with one repeated character, as examples write them
    (ghp_xxxx..., AKIAXXXXXXXXXXXXXXXX, sk_test_0000...): one character is half of it or more,
    which a random token of 16 or more characters never comes near."""
    chars = [c.lower() for c in value if c.isalnum()]
    return bool(chars) and Counter(chars).most_common(1)[0][1] * 2 >= len(chars)


def not_a_credential(value: str) -> bool:
    return reads_as_words(value) or is_stand_in(value)
