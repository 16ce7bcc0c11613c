"""Secrets in text, with their character spans: detect-secrets' detectors plus a few rules it lacks.

detect-secrets reports the values it finds line by line, not where they are, and redaction
needs spans; so its plugins' own patterns are run here with finditer. Token patterns cannot
cross a line, so they run over the whole text at once, which is much faster than line by
line. The keyword and entropy rules (assignments.py) are costlier and run only on lines a
cheap combined pattern picks out. Verification, which would send each candidate to the
provider over the network, is never called.
"""

from __future__ import annotations

import re
from typing import Sequence

from detect_secrets.filters.heuristic import is_templated_secret
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from .assignments import MAX_LINE, TRIGGER as ASSIGNMENT_TRIGGER, find_in_line
from .finding import Finding, allowed, merge
from .words import is_placeholder_token, not_a_credential

# Left out: Artifactory (its "AP[0-9A-F]..." password pattern matches CamelCase identifiers),
# IBM, Cloudant and SoftLayer (keyword-and-length rules, slow on every line and rare), and
# public IP addresses (not secrets).
TOKEN_DETECTORS = [
    (AWSKeyDetector, "aws_access_key"), (GitHubTokenDetector, "github_token"),
    (GitLabTokenDetector, "gitlab_token"), (SlackDetector, "slack_token"), (StripeDetector, "stripe_key"),
    (JwtTokenDetector, "jwt"), (AzureStorageKeyDetector, "azure_storage_key"),
    (DiscordBotTokenDetector, "discord_token"), (MailchimpDetector, "mailchimp_key"), (NpmDetector, "npm_token"),
    (OpenAIDetector, "openai_key"), (PypiTokenDetector, "pypi_token"), (SendGridDetector, "sendgrid_key"),
    (SquareOAuthDetector, "square_oauth"), (TelegramBotTokenDetector, "telegram_token"),
    (TwilioKeyDetector, "twilio_key"), (BasicAuthDetector, "url_password"),
]
# Detectors whose pattern captures the secret itself (an AWS secret key between quotes, the
# password of a URL, an npm token); the others capture only a prefix such as "ghp", so for
# them the whole match is the secret.
VALUE_GROUP = {AWSKeyDetector, BasicAuthDetector, NpmDetector}
# Detectors whose pattern starts with the name of the value: only the value is the secret, so the
# name stays readable (AccountKey=<SECRET:azure_storage_key>).
VALUE_AFTER = {AzureStorageKeyDetector: len("AccountKey=")}
# npm's pattern runs to the end of the line; its value ends before a space or a quote.
_VALUE_END = re.compile(r"[^\s'\"`]+")

# Hand rules, each for a case detect-secrets 1.5 misses: (kind, pattern, group holding the secret).
HAND_RULES = [
    # Fine-grained GitHub tokens: its GitHub pattern knows only ghp_/gho_/ghu_/ghs_/ghr_.
    ("github_token", re.compile(r"github_pat_[0-9A-Za-z_]{82}"), 0),
    # It has no Google detector.
    ("google_api_key", re.compile(r"AIza[0-9A-Za-z_\-]{35}"), 0),
    # Its AWS secret key pattern requires quotes, so .env, INI and YAML lines pass; and it needs
    # "aws" on the line, which AWS's own field name (SecretAccessKey, in STS output and in the
    # S3-compatible stores that copy it: MINIO_SECRET_ACCESS_KEY) does not have.
    ("aws_secret_key", re.compile(r"(?:(?i:aws)[\w\-]{0,30}?(?i:secret)|(?i:secret[_\-]?access[_\-]?key))[\w\-]{0,30}"
                                  r"[\"']?[ \t]*[=:][ \t]*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"), 1),
    # Its URL pattern needs a user name; redis://:password@host has none.
    ("url_password", re.compile(r"://:([^\s:/?#\[\]@!$&'()*+,;=]+)@"), 1),
    # Its Slack pattern knows xox? tokens, not app-level tokens.
    ("slack_token", re.compile(r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+"), 0),
    # Its Stripe pattern is for live keys only; test keys still read a test account's data.
    ("stripe_key", re.compile(r"[rs]k_test_[0-9A-Za-z]{24,}"), 0),
    # Model-provider keys, which a fine-tuning project's scripts hold more often than most:
    # its OpenAI pattern is for the old key format only.
    ("openai_key", re.compile(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}"), 0),
    ("anthropic_key", re.compile(r"sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_\-]{80,}"), 0),
    ("huggingface_token", re.compile(r"hf_[A-Za-z0-9]{34}(?![A-Za-z0-9])"), 0),
    # Its npm pattern knows tokens only on an .npmrc line; npm_ tokens are also set as NPM_TOKEN
    # or NODE_AUTH_TOKEN in CI files and shells.
    ("npm_token", re.compile(r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"), 0),
    # Credentials in HTTP headers (curl lines, docs): not a quoted string of their own, so the
    # entropy plugins never see them. The header's name and its value are written apart in as
    # many ways as there are HTTP clients ("Authorization: Bearer", Go's Set("Authorization",
    # "Bearer "), nginx's `Authorization "Basic `, Postman's "key": "Authorization", "value":),
    # so the scheme may follow the name anywhere within a few words on its line.
    ("bearer_token", re.compile(
        r"(?i:authorization)[^\n]{0,20}?(?<![A-Za-z])(?i:bearer|basic|token)[ \t]+([A-Za-z0-9._~+/\-]{16,}=*)"), 1),
]
# Text every match of a slow detector (a class, or a hand rule by its kind) contains, looked
# for in the lower-cased text (or searched for, when a pattern): most texts hold none, and a
# substring test is a hundred times cheaper than a pattern without a literal start.
GATES = {
    AWSKeyDetector: ("akia", "asia", "abia", "acca", "a3t", "aws"), SlackDetector: ("xox", "hooks.slack"),
    StripeDetector: ("k_live_",), MailchimpDetector: ("-us",),
    TelegramBotTokenDetector: re.compile(r":[\w\-]{35}"),
    "aws_secret_key": ("aws", "secretaccesskey", "secret_access_key", "secret-access-key"),
    "bearer_token": ("authorization",), "url_password": ("://:",),
}
PRIORITY = {"private_key": 100, "url_password": 70, "bearer_token": 60, "password": 50, "secret": 50,
            "high_entropy": 10}  # every other kind (a known token shape): 80

PLACEHOLDER = re.compile(r"<(?:SECRET|PII|PHONE):\w+>")
# detect-secrets' patterns stop at a fixed length (Stripe 24, GitHub 36) while real tokens can
# be longer; a token cut short would leave its tail in the text, so matches run on to its end.
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-]*")
_JWT_TAIL = re.compile(r"[A-Za-z0-9_\-.+/=]*")  # its pattern ends lazily, before the signature
# Its BEGIN patterns match the words alone, so code and docs that name a key's armour line
# (a parser, this module) would lose everything up to the next blank line: an armour line always
# starts with its dashes, so those are required. They leave out PKCS#8's encrypted form, which
# still is the key, under a passphrase.
_PEM_BEGIN = re.compile("|".join([("-{4,5} ?" + p.pattern) if p.pattern.startswith("BEGIN") else p.pattern
                                  for p in PrivateKeyDetector.denylist] + ["-{5}BEGIN ENCRYPTED PRIVATE KEY"]))
_PEM_END = re.compile(r"-{4,5} ?END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}|^Private-MAC: *\S*$", re.MULTILINE)
_PEM_BODY_END = re.compile(r"\n[ \t+\-]*\n|$")  # without an END line: the key runs to a blank line
PEM_MAX = 20_000  # an END further away than any key block is long belongs to something else


def find_secrets(text: str, allow: Sequence[re.Pattern] = ()) -> list[Finding]:
    """Every secret in `text`, as non-overlapping findings sorted by start; values that fully match
    an `allow` pattern are left alone."""
    low = text.lower()
    if len(low) != len(text):
        low = None  # lower() changed a length (rare letters like "İ"), so its offsets are not the text's
    # Redacting a redacted text must change nothing: "KEY=<SECRET:aws_access_key>" is not a secret.
    placeholders = [m.span() for m in PLACEHOLDER.finditer(text)] if "<SECRET:" in text or "<P" in text else []
    found = []
    for f in _private_keys(text) + _tokens(text, low) + _assignments(text, low):
        if allowed(text[f.start:f.end], allow) or any(s <= f.start and f.end <= e for s, e in placeholders):
            continue
        found.append((PRIORITY.get(f.kind, 80), f))
    return merge(found)


def _private_keys(text: str) -> list[Finding]:
    # detect-secrets flags the BEGIN line; the whole block is the secret.
    out = []
    for m in _PEM_BEGIN.finditer(text):
        start = m.start()  # back over the dashes: "-----BEGIN", and SSH2's "---- BEGIN"
        if text[start - 2:start] == "- ":
            start -= 1
        while start > 0 and text[start - 1] == "-":
            start -= 1
        end = _PEM_END.search(text, m.end(), m.end() + PEM_MAX)
        out.append(Finding("private_key", start, end.end() if end else _PEM_BODY_END.search(text, m.end()).start()))
    return out


def _gate_open(key, text: str, low: str | None) -> bool:
    gate = GATES.get(key)
    if gate is None or low is None:
        return True
    if isinstance(gate, re.Pattern):
        return gate.search(text) is not None
    return any(s in low for s in gate)


def _tokens(text: str, low: str | None) -> list[Finding]:
    out = []
    for plugin, kind in TOKEN_DETECTORS:
        if not _gate_open(plugin, text, low):
            continue
        for pattern in plugin.denylist:
            for m in pattern.finditer(text):
                f = _token(text, plugin, kind, m)
                if f is not None:
                    out.append(f)
    for kind, pattern, group in HAND_RULES:
        if not _gate_open(kind, text, low):
            continue
        for m in pattern.finditer(text):
            start, end = m.span(group)
            if group == 0 and start > 0 and text[start - 1].isalnum():
                continue
            f = Finding(kind, start, _TOKEN_TAIL.match(text, end).end() if group == 0 else end)
            if not _stand_in(f, text[f.start:f.end]):
                out.append(f)
    return out


def _stand_in(f: Finding, value: str) -> bool:
    """An example's token (ghp_xxxx...), or a URL's password that is a word or a stand-in
    (postgres://user:password@localhost, amqp://guest:guest@...): see words.py."""
    if f.kind in ("url_password", "bearer_token"):
        return is_templated_secret(value) or value == "%s" or not_a_credential(value)
    return is_placeholder_token(value)


def _token(text: str, plugin, kind: str, m: re.Match) -> Finding | None:
    if plugin in VALUE_GROUP and m.re.groups:
        start, end = m.span(1)
        value = m.group(1)
        if plugin is AWSKeyDetector:
            kind = "aws_secret_key"
        if plugin is NpmDetector:
            end = start + _VALUE_END.match(value).end()
        f = Finding(kind, start, end)
        return None if _stand_in(f, text[start:end]) else f  # scheme://user:<password>@host, user:password@
    start, end = m.span()
    if start > 0 and text[start - 1].isalnum():
        return None  # the middle of a longer word or hash, not a token
    if plugin is JwtTokenDetector:
        if not plugin.is_formally_valid(m.group()):
            return None
        end = _JWT_TAIL.match(text, end).end()
        while end > start and text[end - 1] == ".":
            end -= 1
    else:
        end = _TOKEN_TAIL.match(text, end).end()
    start += VALUE_AFTER.get(plugin, 0)
    f = Finding(kind, start, end)
    return None if _stand_in(f, text[start:end]) else f


def _assignments(text: str, low: str | None) -> list[Finding]:
    # The keyword and entropy rules are the slow part; only lines the combined trigger picks out
    # get them. Run over the lower-cased text the trigger needs no IGNORECASE, several times faster.
    trigger = ASSIGNMENT_TRIGGER if low is not None else re.compile(ASSIGNMENT_TRIGGER.pattern, re.IGNORECASE)
    out: list[Finding] = []
    next_line = 0
    for m in trigger.finditer(text if low is None else low):
        if m.start() < next_line:
            continue  # this line was already scanned
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.start())
        end = len(text) if end < 0 else end
        if end > start and text[end - 1] == "\r":
            end -= 1  # CRLF line endings: the value ends before the \r
        if end - start > MAX_LINE:
            # A minified file's one line: the keyword patterns are quadratic in a line's length,
            # so look only around this hit, far enough right for any value to end inside.
            start, end = max(start, m.start() - 200), min(end, m.start() + 1000)
        next_line = end + 1
        out += [Finding(kind, start + s, start + e) for kind, s, e in find_in_line(text[start:end])]
    return out
