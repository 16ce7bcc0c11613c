"""Secrets assigned to a name: `password = "..."`, `API_KEY=...`, `"secret": "..."`, `token: <random>`.

detect-secrets' keyword patterns find the value after a secret-sounding name and its entropy
plugins find random-looking quoted strings. Both were made for scanning files whose type they
know; here the type is unknown, and they are tuned for recall, so each candidate passes the
filters below, which keep code (`password = get_password()`), placeholders (`${DB_PASSWORD}`),
words (`secrets: drop`, words.py) and hashes (commit ids, lock-file integrity values, digests) out.
"""

from __future__ import annotations

import base64
import binascii
import re

from detect_secrets.filters.heuristic import (is_not_alphanumeric_string, is_potential_uuid,
                                              is_prefixed_with_dollar_sign, is_sequential_string,
                                              is_templated_secret)
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.keyword import (CONFIG_DENYLIST_REGEX_TO_GROUP, DENYLIST, GOLANG_DENYLIST_REGEX_TO_GROUP,
                                            QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)

from .words import looks_like_word, not_a_credential, reads_as_words

# The file type is unknown, so every way of writing an assignment detect-secrets knows is tried:
# the quoted forms of code and the unquoted ones of .env, INI and YAML files. It has no pattern
# for these, added here: XML elements (<password>...</password>), two-argument calls (PHP's
# define('DB_PASSWORD', '...')), key-value attributes (.NET's <add key="ApiKey" value="..."/>) and
# annotated assignments, where a type stands between the name and the value (Python's
# `db_password: str = "..."`, TypeScript's `apiKey: string = '...'`).
_NAME = r"[\w:.\-]*(?:" + "|".join(DENYLIST) + r")[\w.\-]*"
KEYWORD_RULES = {**QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP, **CONFIG_DENYLIST_REGEX_TO_GROUP,
                 **GOLANG_DENYLIST_REGEX_TO_GROUP,
                 re.compile(rf"<{_NAME}>([^<\s]+)</", re.IGNORECASE): 1,
                 re.compile(rf"\([ \t]*[\"']{_NAME}[\"'][ \t]*,[ \t]*([\"'])([^\"'\s]+)\1[ \t]*\)", re.IGNORECASE): 2,
                 re.compile(rf"[\"']{_NAME}[\"'][ \t]+value[ \t]*=[ \t]*([\"'])([^\"'\s]+)\1", re.IGNORECASE): 2,
                 re.compile(rf"{_NAME}[ \t]*:[ \t]*[\w.\[\]|, ]{{1,40}}?=[ \t]*([\"'])([^\"'\s]+)\1", re.IGNORECASE): 2}
B64, HEX = Base64HighEntropyString(), HexHighEntropyString()
# Run over the lower-cased text: a secret-sounding name, or a run of 20 base64 characters right
# after a quote or an assignment (where the entropy rules could find something).
TRIGGER = re.compile("|".join(DENYLIST) + r"|[\"'=:][ \t]*[a-z0-9+/_\-]{20}")

_KEYWORD = re.compile("|".join(DENYLIST), re.IGNORECASE)
_PASSWORDISH = re.compile(r"pass|pwd|contrase", re.IGNORECASE)
_SECRETISH = re.compile(r"token|secret|key|pass|pwd|auth|cred|api|private|signature|session|cookie|bearer",
                        re.IGNORECASE)
# Names whose values are not the secret but something about it, or hashes of public things.
NOT_SECRET_WORDS = {
    "name", "names", "env", "var", "file", "path", "dir", "type", "field", "header", "length", "len", "prompt",
    "label", "help", "message", "msg", "error", "param", "column", "url", "uri", "regex", "pattern", "policy",
    "id", "ids", "count", "min", "max", "size", "format", "prefix", "placeholder", "hint", "title", "text",
    "description", "mode", "version", "enabled", "required", "ref", "arn", "location", "store", "provider",
}
HASH_WORDS = {
    "integrity", "hash", "digest", "sha", "md", "checksum", "sum", "etag", "commit", "rev", "revision", "ref",
    "id", "uuid", "guid", "version", "resolved", "url", "uri", "href", "src", "path", "file", "name", "image", "tag",
}
STOPWORDS = {
    "none", "null", "nil", "true", "false", "undefined", "empty", "required", "optional", "str", "string", "bytes",
    "int", "bool", "any", "object", "secret", "password", "changeme", "redacted", "hidden", "masked", "secretstr",
}
ALGORITHMS = re.compile(r"(?i)(?:sha|md|hs|rs|es|ps|aes|base|utf|int|uint|float|argon|pbkdf|scrypt|bcrypt|crc|x)\d*")
# Template syntax (a %s only as the whole value: a random password may hold those two characters),
# <angle> and your_ placeholders, masks (xxx, ***) and elisions (sk-..., ...).
_PLACEHOLDER = re.compile(r"\{\{|\}\}|%\(|^%s$|\$\{|\$\(|^<.*>$|^your[_\-]|^xxx|^\.\.\.|\.\.\.$|^\*\*\*", re.IGNORECASE)
_PATH = re.compile(r"(?:\.{0,2}/|~/|[A-Za-z]:\\)[\w.\-/\\]+")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")  # the name of the variable that holds the secret
_IDENT = re.compile(r"[A-Za-z_]\w*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:[.:][A-Za-z_]\w*)+")  # attribute access, module:function
# An unquoted value ends where a shell, a URL query, a connection string or Markdown's inline
# code would end it, or at an escaped line break: YAML or .env text inside a string literal
# ("secrets: drop\n  pii: keep") goes on after it.
_BARE_VALUE = re.compile(r"(?:[^\s;,&)\]}'\"`<>\\]|\\(?![nrt]))+")
_ENV_LINE = re.compile(r"[+\- ]?[ \t]*(?:export[ \t]+)?[A-Za-z_][\w.\-]*=[^\s=]\S*[ \t]*")
_KEY_BEFORE = re.compile(r"([A-Za-z_][\w.\-]*)[\"'\]]{0,2}[ \t]*(?:[:=]=?|=>|==)[ \t]*@?$")
# A whole line `name = value`, `name: value`, or a shell's `NAME=value command` (the variable set
# for one command).
_BARE_ASSIGN = re.compile(r"[+\- ]?[ \t]*(?:-[ \t]+)?(?:export[ \t]+)?[\"']?([A-Za-z_][\w.\-]*)[\"']?"
                          r"(?:[ \t]*[=:][ \t]*([A-Za-z0-9+/=_\-]{20,})[ \t]*|=([A-Za-z0-9+/=_\-]{20,})[ \t]+\S.*)")
_ALGO_PREFIX = re.compile(r"(?i)(?:sha\d+|md5|h1)[-:]")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_WORDLIKE = re.compile(r"[A-Z]?[a-z]{3,}|[A-Z]{3,}(?![a-z])")
_LOWER_WORD = re.compile(r"[a-z]{3,}")
MAX_LINE = 2000  # longer lines (minified files) are scanned in windows around each trigger


def find_in_line(line: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of the secrets assigned in one line."""
    out = []
    # The trigger picked this line for a name or for a long run; the keyword patterns are the
    # costly part, so they run only where a name is.
    for pattern, group in KEYWORD_RULES.items() if _KEYWORD.search(line) else ():
        for m in pattern.finditer(line):
            found = _keyword(line, m, group)
            if found:
                out.append(found)
    for m in B64.regex.finditer(line):
        key = _KEY_BEFORE.search(line, max(0, m.start() - 100), m.start())
        if key and _random_enough(m.group(2), key.group(1)):
            out.append(("high_entropy", *m.span(2)))
    # Unquoted values (.env, INI, YAML): detect-secrets' entropy plugins require quotes.
    bare = _BARE_ASSIGN.fullmatch(line)
    if bare:
        group = 2 if bare.group(2) else 3
        if _random_enough(bare.group(group), bare.group(1)):
            out.append(("high_entropy", *bare.span(group)))
    return out


def _keyword(line: str, m: re.Match, group: int) -> tuple[str, int, int] | None:
    start, end = m.span(group)
    value = m.group(group)
    key = _key_around(line, m.start() if m.start() < start else end)
    quoted = start > 0 and line[start - 1] in "'\"`>"  # or an XML element's text: a literal too
    if not quoted:
        # Unquoted, detect-secrets takes the rest of the line; a value ends at the first space or separator.
        cut = _BARE_VALUE.match(value)
        value = cut.group().rstrip(":.") if cut else ""
        end = start + len(value)
    if not _plausible(value, key, quoted, line):
        return None
    return ("password" if _PASSWORDISH.search(key) else "secret"), start, end


def _key_around(line: str, pos: int) -> str:
    """The whole name a secret-sounding word sits in (DB_PASSWORD, client_secret, apiKeyHeader)."""
    m = _KEYWORD.search(line, pos)
    if not m:
        return ""
    start, end = m.start(), m.end()
    while start > 0 and (line[start - 1].isalnum() or line[start - 1] in "_-"):
        start -= 1
    while end < len(line) and (line[end].isalnum() or line[end] in "_-"):
        end += 1
    return line[start:end]


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(name)]


def _plausible(value: str, key: str, quoted: bool, line: str) -> bool:
    """Is this value a credential, rather than code, a placeholder or a description of one?"""
    if (len(value) < 4 or is_templated_secret(value) or is_prefixed_with_dollar_sign(value)
            or is_not_alphanumeric_string(value) or _PLACEHOLDER.search(value) or len(set(value)) <= 2):
        return False
    words = _words(key)
    if value.lower() in STOPWORDS or value.lower() == key.lower() or (words and words[-1] in NOT_SECRET_WORDS):
        return False
    if not_a_credential(value):
        return False  # a mode, a type, a name (secrets: drop, auth="basic") or a stand-in (changeme)
    if "://" in value or _PATH.fullmatch(value) or _ENV_NAME.fullmatch(value):
        return False  # a URL (its password, if any, is found on its own), a path, a variable's name
    if quoted:
        return not any(c.isspace() for c in value)  # prose ("Enter your password"), not a credential
    # Unquoted: a config literal, or code naming another variable, attribute or call?
    if any(c in value for c in "([{") or _DOTTED.fullmatch(value):
        return False
    if _IDENT.fullmatch(value):
        if _ENV_LINE.fullmatch(line):
            return True  # KEY=value: a .env or shell file, where values are literals
        # In code an unquoted name is another variable (password = password_2, key = cfg_v2);
        # a random-looking one is a literal of YAML, INI or a connection string.
        return not reads_as_words(value, numbers=True) and not ALGORITHMS.fullmatch(value)
    return True


def _random_enough(value: str, key: str) -> bool:
    """A random-looking value under a name that does not say it is a hash, an id or a path."""
    if len(value) < 20 or set(_words(key)) & HASH_WORDS:
        return False
    if is_potential_uuid(value) or is_sequential_string(value) or _ALGO_PREFIX.match(value):
        return False
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    secretish = bool(_SECRETISH.search(key))
    if all(c in "0123456789abcdefABCDEF" for c in value):
        # Hex under a neutral name is nearly always a hash (a commit, a checksum, a digest).
        return secretish and HEX.calculate_shannon_entropy(value) > HEX.entropy_limit
    if _decodes_to_text(value) or _made_of_words(value):
        return False  # base64 of ordinary text, or a name; a key decodes to random bytes
    entropy = B64.calculate_shannon_entropy(value)
    if secretish:
        # A secret-sounding name is evidence already, so the bar is gitleaks' generic-rule 3.5;
        # detect-secrets' 4.5 misses most random strings shorter than about 40 characters.
        return entropy > 3.5
    return entropy > B64.entropy_limit and not value.islower() and not value.isupper()


def _made_of_words(value: str) -> bool:
    """A name (HiggsAudioV2TokenizerModel, org/Model-7B, CHECKPOINT_KEYS, tool_arg_key_b9d4): words
    cover at least 80% of it, which fewer than 1 in 1000 random base64 strings of 20-48 characters
    reach; or it is a lower-case slug with two whole words between its separators."""
    # Only pieces that could be words count: random letters make runs like khnxhtgk too.
    if sum(len(w) for w in _WORDLIKE.findall(value) if looks_like_word(w)) >= 0.8 * len(value):
        return True
    return value.islower() and sum(bool(_LOWER_WORD.fullmatch(p)) for p in re.split(r"[_\-/]", value)) >= 2


def _decodes_to_text(value: str) -> bool:
    altchars = b"-_" if ("-" in value or "_" in value) else None
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=altchars, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return len(text) >= 8 and sum(c.isprintable() or c in "\n\r\t" for c in text) >= 0.95 * len(text)
