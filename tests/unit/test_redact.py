import json
import re

import pytest

from fixtures.secrets import NEGATIVE_CONTROLS, PII, PII_VALUES, PLANTED, SECRET_VALUES
from knowtune.config import RedactConfig
from knowtune.redact import Finding, Redactor, find_pii, find_secrets

PSEUDONYM_EMAIL = re.compile(r"person-[0-9a-f]{8}@example\.invalid")
PSEUDONYM_PHONE = re.compile(r"<PHONE:[0-9a-f]{8}>")


def redactor(**cfg) -> Redactor:
    return Redactor(RedactConfig(**cfg))


def planted(kind: str, n: int = 0) -> tuple[str, str]:
    """The n-th planted (snippet, secret) of a kind."""
    return [(s, v) for (k, s), v in zip(PLANTED, SECRET_VALUES) if k == kind][n]


def leaked(value: str, out: str) -> list[str]:
    """The pieces of a (possibly multi-line) secret still in the output."""
    return [piece for piece in value.splitlines() if len(piece.strip("+")) >= 8 and piece in out]


@pytest.mark.parametrize(("kind", "snippet", "value"), [(k, s, v) for (k, s), v in zip(PLANTED, SECRET_VALUES)],
                         ids=[f"{i}-{k}" for i, (k, _) in enumerate(PLANTED)])
def test_every_planted_secret_is_replaced_by_a_placeholder_of_its_kind(kind, snippet, value):
    assert value in snippet
    out = redactor().text(snippet, "repo:test")
    assert not leaked(value, out), out
    assert f"<SECRET:{kind}>" in out, out
    # Only the secret goes: the text before and after it is untouched.
    before, _, after = snippet.partition(value)
    assert out.startswith(before.rsplit("\n", 1)[0]) and out.endswith(after.split("\n")[-1])


def test_the_fixture_has_enough_cases_of_every_required_kind():
    kinds = [k for k, _ in PLANTED]
    for kind in ("aws_access_key", "aws_secret_key", "github_token", "gitlab_token", "slack_token", "stripe_key",
                 "google_api_key", "private_key", "url_password", "password", "secret", "jwt", "high_entropy"):
        assert kind in kinds
    assert len(NEGATIVE_CONTROLS) >= 40 and len(PII) == len(PII_VALUES) and len(PLANTED) == len(SECRET_VALUES)


def test_find_secrets_spans_cover_exactly_the_secret():
    for (kind, snippet), value in zip(PLANTED, SECRET_VALUES):
        found = find_secrets(snippet)
        assert [f.kind for f in found] == [kind], snippet
        start = snippet.index(value)
        assert found[0].start <= start and found[0].end >= start + len(value)
        if kind in ("url_password", "password", "aws_secret_key", "github_token", "slack_token", "jwt"):
            assert snippet[found[0].start:found[0].end] == value


def test_url_password_keeps_user_and_host():
    out = redactor().text("DATABASE_URL=postgres://app_user:N7vQ2kLp9xWz@db.internal:5432/lanterna", "s")
    assert out == "DATABASE_URL=postgres://app_user:<SECRET:url_password>@db.internal:5432/lanterna"


def test_private_key_block_is_replaced_whole():
    block = planted("private_key")[1]
    out = redactor().text(f"before\n{block}\nafter\n", "s")
    assert out == "before\n<SECRET:private_key>\nafter\n"


def test_secrets_in_a_diff_markdown_and_json_are_all_found():
    aws, webhook, token = planted("aws_secret_key")[1], planted("slack_token", 3)[1], planted("github_token")[1]
    json_snippet, db_password = planted("password", 4)
    diff = "\n".join([
        "diff --git a/settings.py b/settings.py",
        "@@ -1,5 +1,6 @@",
        " DEBUG = False",
        f'-AWS_SECRET_ACCESS_KEY = "{aws}"',
        '+AWS_SECRET_ACCESS_KEY = os.environ["AWS_SECRET_ACCESS_KEY"]',
        f'+SLACK_WEBHOOK = "{webhook}"',
        " ALLOWED_HOSTS = ['lanterna.example.com']",
    ])
    doc = f"# Setup\n\nExport `GITHUB_TOKEN={token}` first.\n\n```json\n{json_snippet}\n```\n"
    for text, values in ((diff, [aws, webhook]), (doc, [token, db_password])):
        out = redactor().text(text, "s")
        assert not [v for v in values if v in out], out
    out = redactor().text(diff, "s")
    assert " DEBUG = False" in out and '+AWS_SECRET_ACCESS_KEY = os.environ["AWS_SECRET_ACCESS_KEY"]' in out


def test_negative_controls_are_left_alone():
    r = redactor()
    changed = [c for c in NEGATIVE_CONTROLS if r.text(c, "controls") != c]
    share = len(changed) / len(NEGATIVE_CONTROLS)
    print(f"negative controls changed: {len(changed)}/{len(NEGATIVE_CONTROLS)} = {share:.1%}")
    assert share <= 1 / 20, changed


def test_findings_are_sorted_non_overlapping_and_carry_no_value():
    text = "\n".join(s for _, s in PLANTED)
    found = find_secrets(text)
    assert all(a.end <= b.start for a, b in zip(found, found[1:]))
    assert len(found) >= len(PLANTED) - 2  # adjacent snippets may merge, none is lost
    f = found[0]
    assert isinstance(f, Finding) and not hasattr(f, "__dict__")
    with pytest.raises(AttributeError):
        f.kind = "x"


def test_drop_mode_returns_none_and_counts():
    r = redactor(secrets="drop")
    assert r.text(planted("aws_access_key")[0], "repo:a") is None
    assert r.dropped == 1 and r.counts["repo:a"] == {"aws_access_key": 1}
    assert r.text("def add(a, b):\n    return a + b\n", "repo:a") == "def add(a, b):\n    return a + b\n"
    assert r.dropped == 1


def test_clean_text_comes_back_unchanged_and_redaction_is_idempotent():
    r = redactor()
    text = "\n".join(s for _, s in PLANTED + PII)
    once = r.text(text, "s")
    assert r.text(once, "s") == once
    assert r.text("", "s") == ""


@pytest.mark.parametrize(("kind", "snippet", "value"), [(k, s, v) for (k, s), v in zip(PII, PII_VALUES)])
def test_pii_is_found_in_international_and_national_formats(kind, snippet, value):
    found = find_pii(snippet)
    assert [(f.kind, snippet[f.start:f.end]) for f in found] == [(kind, value)]
    assert redactor(pii="replace").text(snippet, "s") == snippet.replace(value, f"<PII:{kind}>")
    assert redactor(pii="keep").text(snippet, "s") == snippet
    out = redactor().text(snippet, "s")
    assert value not in out
    assert (PSEUDONYM_EMAIL if kind == "email" else PSEUDONYM_PHONE).search(out)


def test_pseudonyms_are_stable_distinct_per_person_and_salted():
    a, b = "Mail ada.lovelace@analytical-engines.co.uk", "Mail grace.hopper@navy.mil"
    r = redactor()
    assert r.text(a, "s") == r.text(a, "s") == redactor().text(a.upper().replace("MAIL", "Mail"), "s")
    assert r.text(a, "s") != r.text(b, "s")
    assert Redactor(RedactConfig(), salt="other").text(a, "s") != r.text(a, "s")
    # One number written two ways is one person.
    assert r.text("+44 20 7946 0958", "s") == r.text("020 7946 0958", "s")
    assert r.text("+44 20 7946 0958", "s") != r.text("+49 30 901820", "s")


def test_person_fields():
    r = redactor()
    name = r.person("Ada Lovelace", "git:lanterna")
    assert re.fullmatch(r"person-[0-9a-f]{8}", name)
    assert r.person(" ada  lovelace ", "git:lanterna") == name
    assert r.person("grace-hopper", "git:lanterna") not in (name, "grace-hopper")
    assert PSEUDONYM_EMAIL.fullmatch(r.person("ada@lighthouse.example", "git:lanterna"))
    assert r.person("ada@lighthouse.example", "git:lanterna") == r.text("ada@lighthouse.example", "git:lanterna")
    assert Redactor(RedactConfig(), salt="x").person("Ada Lovelace", "s") != name
    assert r.counts["git:lanterna"] == {"person": 3, "email": 3}
    assert redactor(pii="replace").person("Ada Lovelace", "s") == "<PII:person>"
    assert redactor(pii="replace").person("ada@lighthouse.example", "s") == "<PII:email>"
    keep = redactor(pii="keep")
    assert keep.person("Ada Lovelace", "s") == "Ada Lovelace" and keep.counts == {}


def test_allow_patterns_prevent_redaction():
    text = 'aws_access_key_id = "AKIAIOSFODNN7EXAMPLE"\npassword = "Tr0ub4dor&3xyz"'
    found = find_secrets(text, allow=[re.compile(r"AKIA[0-9A-Z]{9}EXAMPLE")])
    assert [f.kind for f in found] == ["password"]
    out = redactor(allow=[r"AKIA[0-9A-Z]{9}EXAMPLE", r"Tr0ub4dor&3xyz"]).text(text, "s")
    assert out == text
    # A value is allowed only when the pattern matches it whole, not a part of it.
    assert redactor(allow=["EXAMPLE"]).text(text, "s") != text
    assert redactor(allow=[r"ada@.*"], pii="replace").text("mail ada@lighthouse.example", "s") == \
        "mail ada@lighthouse.example"


def test_an_allow_entry_that_is_not_a_pattern_is_a_clear_error():
    with pytest.raises(ValueError, match=r"ingest.redact.allow: '\[a-' is not a regular expression"):
        redactor(allow=["[a-"])


@pytest.mark.parametrize("path", [".env", ".env.production", "deploy/.env.staging", "certs/server.pem", "id_rsa",
                                  "home/.ssh/id_ed25519", ".npmrc", "credentials.json", "gcp/service-account-prod.json",
                                  "terraform/prod.tfvars", "app/aws_credentials_backup.json"])
def test_credential_files_are_recognised(path):
    reason = redactor().credential_reason(path)
    assert reason is not None and reason.startswith("credential file (matches ")


@pytest.mark.parametrize("path", ["environment.py", "keys.md", "src/env/config.py", "docs/credentials.md",
                                  "id_rsa_parser.py", "pem.py", "README.md", "tokenizer.json"])
def test_ordinary_files_are_not_credential_files(path):
    assert redactor().credential_reason(path) is None


def test_credential_reason_names_the_pattern_and_extra_globs_add_to_the_list():
    assert redactor().credential_reason("certs/server.pem") == "credential file (matches *.pem)"
    r = redactor(extra_credential_files=["vault/*.txt"])
    assert r.credential_reason("vault/root.txt") == "credential file (matches vault/*.txt)"
    assert r.credential_reason("id_rsa") is not None  # the defaults still apply
    assert redactor(credential_files=["*.pem"]).credential_reason(".env") is None


def test_counts_are_by_source_and_kind_and_hold_no_secret_value():
    r = redactor()
    r.text(planted("aws_access_key")[0] + "\n" + planted("aws_secret_key")[0], "repo:a")
    r.text(planted("github_token")[0] + "\nmail ada@lighthouse.example", "git:b")
    assert r.counts == {"repo:a": {"aws_access_key": 1, "aws_secret_key": 1},
                        "git:b": {"github_token": 1, "email": 1}}
    dumped = json.dumps(r.counts) + repr(r.__dict__)
    for value in SECRET_VALUES[:6] + ["ada@lighthouse.example"]:
        assert value not in dumped


def test_a_secret_on_a_long_minified_line_is_found():
    stripe_key = planted("stripe_key")[1]
    line = ("var a=" + ";".join(f"f{i}(x{i})" for i in range(6000)) + f';var stripeKey="{stripe_key}";'
            + 'var db={password:"Tr0ub4dor&3xyz"};' + ";".join(f"g{i}()" for i in range(2000)))
    out = redactor().text(line, "s")
    assert stripe_key not in out and "Tr0ub4dor&3xyz" not in out
    assert "<SECRET:stripe_key>" in out and "<SECRET:password>" in out


def test_text_whose_lowercase_changes_length_and_crlf_lines():
    text = 'İstanbul ofisi\r\nDB_PASSWORD=hunter2x\r\npassword = "Tr0ub4dor&3xyz"\r\n'
    out = redactor().text(text, "s")
    assert out == 'İstanbul ofisi\r\nDB_PASSWORD=<SECRET:password>\r\npassword = "<SECRET:password>"\r\n'
