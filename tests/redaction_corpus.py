"""Secrets in common formats, and strings that only look like secrets, for the redaction tests and bench.

Every token is fake: its body comes from a seeded random generator, and every vendor prefix is built by
concatenation, so this file holds no literal token a push-protection scanner (or glassbox itself) would
flag. A ``Secret`` carries the token and the ``pieces`` that must not survive redaction: the token itself,
or its encoded form, or every fragment of a split form.
"""

from __future__ import annotations

import base64
import json
import random
import string
import urllib.parse
from typing import NamedTuple


class Secret(NamedTuple):
    name: str  # the format
    text: str  # a sample embedding the token
    token: str  # the secret itself
    pieces: tuple[str, ...]  # what redaction must remove: the token, its encoded form, or its fragments


_rng = random.Random(0x61A55B0C)  # fixed: the corpus is the same on every run

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def rand(n: int, alphabet: str = ALNUM) -> str:
    """``n`` random characters with at least one lower-case letter, one upper-case letter and one digit when
    the alphabet has them, like a generated token."""
    while True:
        out = "".join(_rng.choice(alphabet) for _ in range(n))
        classes = [c for c in (string.ascii_lowercase, string.ascii_uppercase, string.digits) if set(c) & set(alphabet)]
        if n < 8 or all(set(out) & set(c) for c in classes):
            return out


def p(*parts: str) -> str:
    """A vendor prefix, written in pieces in this file."""
    return "".join(parts)


def _uuid() -> str:
    h = rand(32, HEX)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _b64_lines(n: int) -> str:
    body = base64.b64encode(_rng.randbytes(n)).decode()
    return "\n".join(body[i : i + 64] for i in range(0, len(body), 64))


def _pem(label: str, n: int = 600) -> str:
    return p("-----BEGIN ", label, " KEY-----\n") + _b64_lines(n) + p("\n-----END ", label, " KEY-----")


def _jwt() -> str:
    def seg(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return ".".join(
        [seg({"alg": "HS256", "typ": "JWT"}), seg({"sub": "deploy-bot", "iat": 1767225600}), rand(43, URLSAFE)]
    )


def _pct_all(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


def plain(name: str, token: str, template: str = "{}") -> Secret:
    return Secret(name, template.format(token), token, (token,))


# --------------------------------------------------------------------------------------------------
# tokens, one per format

ANTHROPIC = p("sk-", "ant-", "api03-") + rand(93, URLSAFE) + "AA"
ANTHROPIC_ADMIN = p("sk-", "ant-", "admin01-") + rand(93, URLSAFE) + "AA"
OPENAI_PROJECT = p("sk-", "proj-") + rand(74, URLSAFE) + p("T3Blbk", "FJ") + rand(74, URLSAFE)
OPENAI_SVCACCT = p("sk-", "svcacct-") + rand(58, URLSAFE) + p("T3Blbk", "FJ") + rand(58, URLSAFE)
OPENAI_ADMIN = p("sk-", "admin-") + rand(58, URLSAFE) + p("T3Blbk", "FJ") + rand(58, URLSAFE)
OPENAI_LEGACY = p("sk-") + rand(20) + p("T3Blbk", "FJ") + rand(20)
OPENAI_LEGACY_48 = p("sk-") + rand(48)
HUGGINGFACE = p("hf", "_") + rand(34, string.ascii_letters)
HUGGINGFACE_ORG = p("api_", "org_") + rand(34, string.ascii_letters)
GOOGLE_API = p("AI", "za") + rand(35, URLSAFE)
GOOGLE_OAUTH_SECRET = p("GOC", "SPX-") + rand(28, URLSAFE)
AZURE_STORAGE_KEY = rand(86, B64) + "=="
AZURE_SAS_SIG = rand(43, B64) + "="
AZURE_CLIENT_SECRET = rand(3) + "8" + p("Q", "~") + rand(34, ALNUM + "_~.")
SLACK_WEBHOOK = p("https://hooks.", "slack.com/services/") + "T" + rand(8, UPPER_DIGITS) + "/B" + rand(10, UPPER_DIGITS)
SLACK_WEBHOOK += "/" + rand(24)
SLACK_APP = p("xa", "pp-") + "1-A" + rand(10, UPPER_DIGITS) + "-" + rand(13, string.digits) + "-" + rand(64, HEX)
SLACK_BOT = p("xo", "xb-") + rand(12, string.digits) + "-" + rand(13, string.digits) + "-" + rand(24)
SLACK_USER = p("xo", "xp-") + rand(12, string.digits) + "-" + rand(12, string.digits) + "-" + rand(12, string.digits)
SLACK_USER += "-" + rand(32, HEX)
STRIPE_LIVE = p("sk_", "live_") + rand(99)
STRIPE_RESTRICTED = p("rk_", "live_") + rand(24)
STRIPE_TEST = p("sk_", "test_") + rand(24)
STRIPE_WEBHOOK = p("wh", "sec_") + rand(32)
GITLAB_PAT = p("gl", "pat-") + rand(20, URLSAFE)
GITLAB_DEPLOY = p("gl", "dt-") + rand(20, URLSAFE)
GITLAB_RUNNER = p("gl", "rt-") + rand(20, URLSAFE)
GITLAB_TRIGGER = p("gl", "ptt-") + rand(40, HEX)
GITLAB_REGISTRATION = p("GR13", "48941") + rand(20, URLSAFE)
NPM = p("np", "m_") + rand(36)
SENDGRID = p("S", "G.") + rand(22, URLSAFE) + "." + rand(43, URLSAFE)
TWILIO_KEY = p("S", "K") + rand(32, HEX)
TWILIO_SID = p("A", "C") + rand(32, HEX)
MAILGUN = p("ke", "y-") + rand(32, HEX)
SHOPIFY_ACCESS = p("shp", "at_") + rand(32, HEX)
SHOPIFY_SHARED = p("shp", "ss_") + rand(32, HEX)
DIGITALOCEAN = p("dop", "_v1_") + rand(64, HEX)
DOPPLER = p("dp.", "pt.") + rand(43)
DATABRICKS = p("da", "pi") + rand(32, HEX)
PYPI = p("pypi-", "AgEIcHlwaS5vcmc") + rand(120, URLSAFE)
DOCKER_HUB = p("dckr", "_pat_") + rand(27, URLSAFE)
ATLASSIAN = p("ATA", "TT3") + rand(178, URLSAFE) + "=" + rand(8, HEX.upper())
HEROKU_V2 = p("HR", "KU-AA") + rand(58, URLSAFE)
HEROKU_LEGACY = _uuid()
POSTMAN = p("PM", "AK-") + rand(24, HEX) + "-" + rand(34, HEX)
LINEAR = p("lin", "_api_") + rand(40)
GRAFANA_CLOUD = (
    p("gl", "c_") + base64.b64encode(json.dumps({"o": "1234", "n": "stack", "k": rand(24)}).encode()).decode()
)
GRAFANA_SA = p("gl", "sa_") + rand(32) + "_" + rand(8, HEX)
NEW_RELIC = p("NR", "AK-") + rand(27, UPPER_DIGITS)
VAULT_SERVICE = p("hv", "s.") + rand(90, URLSAFE)
VAULT_BATCH = p("hv", "b.") + rand(138, URLSAFE)
AGE = p("AGE-SECRET", "-KEY-1") + rand(58, BECH32)
AWS_KEY_ID = p("AK", "IA") + rand(16, UPPER_DIGITS)
AWS_SECRET = rand(40, B64)
GITHUB_PAT = p("gh", "p_") + rand(36)
GITHUB_FINE = p("github", "_pat_") + rand(22) + "_" + rand(59)
PULUMI = p("pu", "l-") + rand(40, HEX)
TERRAFORM = rand(14, string.ascii_lowercase + string.digits) + p(".atlas", "v1.") + rand(67, URLSAFE)
TAILSCALE = p("tskey", "-auth-") + rand(12) + "-" + rand(32)
SENTRY_USER = p("sntr", "yu_") + rand(64, HEX)
GROQ = p("gs", "k_") + rand(52)
RUBYGEMS = p("ruby", "gems_") + rand(48, HEX)
PASSWORD = rand(1, string.ascii_letters) + rand(17, ALNUM + "!#%^*-_")
BEARER = rand(40, URLSAFE + ".")
JWT = _jwt()
RSA_KEY = _pem("RSA PRIVATE")
OPENSSH_KEY = _pem("OPENSSH PRIVATE")
EC_KEY = _pem("EC PRIVATE", 120)
PGP_KEY = p("-----BEGIN PGP ", "PRIVATE KEY BLOCK-----\n\n") + _b64_lines(400) + "\n=" + rand(4, B64)
PGP_KEY += p("\n-----END PGP ", "PRIVATE KEY BLOCK-----")
GCP_PRIVATE = p("-----BEGIN ", "PRIVATE KEY-----\n") + _b64_lines(300) + p("\n-----END ", "PRIVATE KEY-----\n")


def _gcp_json() -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "acme-prod",
            "private_key_id": rand(40, HEX),
            "private_key": GCP_PRIVATE,
            "client_email": "deployer@acme-prod.iam.gserviceaccount.com",
        },
        indent=2,
    )


_SAS_URL = (
    "https://acmelogs.blob.core.windows.net/exports/report.csv?sv=2022-11-02&ss=b&srt=co&sp=rl"
    "&se=2026-12-31T00:00:00Z&st=2026-01-01T00:00:00Z&spr=https&sig=" + urllib.parse.quote(AZURE_SAS_SIG, safe="")
)
_BASIC = base64.b64encode(f"deploy:{PASSWORD}".encode()).decode()

SECRETS: list[Secret] = [
    plain("anthropic-api-key", ANTHROPIC, "export ANTHROPIC_API_KEY={}"),
    plain("anthropic-admin-key", ANTHROPIC_ADMIN, "admin key: {}"),
    plain("openai-project-key", OPENAI_PROJECT, 'OPENAI_API_KEY="{}"'),
    plain("openai-service-account-key", OPENAI_SVCACCT, "client = OpenAI(api_key='{}')"),
    plain("openai-admin-key", OPENAI_ADMIN, "the admin key {} was pasted here"),
    plain("openai-legacy-key", OPENAI_LEGACY, "key={}"),
    plain("openai-legacy-48", OPENAI_LEGACY_48, "use {} for the batch job"),
    plain("huggingface-token", HUGGINGFACE, "huggingface-cli login --token {}"),
    plain("huggingface-org-token", HUGGINGFACE_ORG, "HF org token: {}"),
    plain("google-api-key", GOOGLE_API, "https://maps.googleapis.com/maps/api/geocode/json?key={}&address=x"),
    plain("google-oauth-client-secret", GOOGLE_OAUTH_SECRET, '{{"installed": {{"client_secret": "{}"}}}}'),
    Secret("gcp-service-account-json", _gcp_json(), GCP_PRIVATE, (json.dumps(GCP_PRIVATE)[1:-1],)),
    plain(
        "azure-storage-connection-string",
        AZURE_STORAGE_KEY,
        "DefaultEndpointsProtocol=https;AccountName=acmelogs;AccountKey={};EndpointSuffix=core.windows.net",
    ),
    Secret(
        "azure-sas-url",
        f"download from {_SAS_URL} before Friday",
        AZURE_SAS_SIG,
        (urllib.parse.quote(AZURE_SAS_SIG, safe=""),),
    ),
    plain("azure-ad-client-secret", AZURE_CLIENT_SECRET, "AZURE_CLIENT_SECRET={}"),
    plain("slack-webhook", SLACK_WEBHOOK, "notify: {}"),
    plain("slack-app-token", SLACK_APP, "SLACK_APP_TOKEN={}"),
    plain("slack-bot-token", SLACK_BOT, "bot token {}"),
    plain("slack-user-token", SLACK_USER, "user token {}"),
    plain("stripe-live-secret-key", STRIPE_LIVE, "stripe.api_key = '{}'"),
    plain("stripe-restricted-key", STRIPE_RESTRICTED, "STRIPE_KEY={}"),
    plain("stripe-test-key", STRIPE_TEST, "test key {}"),
    plain("stripe-webhook-secret", STRIPE_WEBHOOK, "endpoint_secret = '{}'"),
    plain("gitlab-pat", GITLAB_PAT, "git clone https://oauth2:{}@gitlab.example.com/acme/infra.git"),
    plain("gitlab-deploy-token", GITLAB_DEPLOY, "deploy token {}"),
    plain("gitlab-runner-token", GITLAB_RUNNER, "gitlab-runner register --token {}"),
    plain("gitlab-pipeline-trigger-token", GITLAB_TRIGGER, "curl -X POST -F token={} -F ref=main"),
    plain("gitlab-runner-registration-token", GITLAB_REGISTRATION, "registration: {}"),
    plain("npm-token", NPM, "//registry.npmjs.org/:_authToken={}"),
    plain("sendgrid-api-key", SENDGRID, "SENDGRID_API_KEY={}"),
    plain("twilio-api-key", TWILIO_KEY, "twilio api key {}"),
    plain("twilio-account-sid", TWILIO_SID, "TWILIO_ACCOUNT_SID={}"),
    plain("mailgun-api-key", MAILGUN, "MAILGUN_API_KEY={}"),
    plain("shopify-access-token", SHOPIFY_ACCESS, "X-Shopify-Access-Token: {}"),
    plain("shopify-shared-secret", SHOPIFY_SHARED, "shared secret {}"),
    plain("digitalocean-pat", DIGITALOCEAN, "doctl auth init -t {}"),
    plain("doppler-token", DOPPLER, "DOPPLER_TOKEN={}"),
    plain("databricks-token", DATABRICKS, "databricks configure --token {}"),
    plain("pypi-token", PYPI, "[pypi]\nusername = __token__\npassword = {}\n"),
    plain("docker-hub-token", DOCKER_HUB, "docker login -u acme -p {}"),
    plain("atlassian-api-token", ATLASSIAN, "JIRA_API_TOKEN={}"),
    plain("heroku-api-key", HEROKU_V2, "heroku token {}"),
    plain("heroku-legacy-api-key", HEROKU_LEGACY, "HEROKU_API_KEY={}"),
    plain("postman-api-key", POSTMAN, "x-api-key: {}"),
    plain("linear-api-key", LINEAR, "LINEAR_API_KEY={}"),
    plain("grafana-cloud-token", GRAFANA_CLOUD, "grafana cloud token {}"),
    plain("grafana-service-account-token", GRAFANA_SA, "GF_TOKEN={}"),
    plain("new-relic-user-key", NEW_RELIC, "NEW_RELIC_API_KEY={}"),
    plain("vault-service-token", VAULT_SERVICE, "VAULT_TOKEN={}"),
    plain("vault-batch-token", VAULT_BATCH, "batch token {}"),
    plain("age-secret-key", AGE, "# created: 2026-01-01\n{}\n"),
    plain("rsa-private-key", RSA_KEY, "key:\n{}\n"),
    plain("openssh-private-key", OPENSSH_KEY, "{}\n"),
    plain("ec-private-key", EC_KEY, "tls.key: |\n{}\n"),
    plain("pgp-private-key", PGP_KEY, "{}\n"),
    plain("aws-access-key-id", AWS_KEY_ID, "aws configure set aws_access_key_id {}"),
    plain("aws-secret-access-key", AWS_SECRET, "aws_secret_access_key = {}"),
    plain("github-pat", GITHUB_PAT, "GITHUB_TOKEN={}"),
    plain("github-fine-grained-pat", GITHUB_FINE, "token: {}"),
    plain("pulumi-access-token", PULUMI, "PULUMI_ACCESS_TOKEN={}"),
    plain("terraform-cloud-token", TERRAFORM, 'credentials "app.terraform.io" {{ token = "{}" }}'),
    plain("tailscale-auth-key", TAILSCALE, "tailscale up --authkey={}"),
    plain("sentry-user-token", SENTRY_USER, "SENTRY_AUTH_TOKEN={}"),
    plain("groq-api-key", GROQ, "GROQ_API_KEY={}"),
    plain("rubygems-token", RUBYGEMS, "GEM_HOST_API_KEY={}"),
    plain("jwt", JWT, "cookie: session={}"),
    plain("bearer-authorization-header", BEARER, "curl -H 'Authorization: Bearer {}' https://api.example.com"),
    Secret("basic-authorization-header", f"Authorization: Basic {_BASIC}", _BASIC, (_BASIC,)),
    plain("url-password", PASSWORD, "DATABASE_URL=postgres://orders:{}@db.internal:5432/orders"),
    plain("assigned-password", PASSWORD, "db:\n  user: orders\n  password: {}\n"),
    plain("stack-yaml-secret", STRIPE_LIVE, "config:\n  aws:region: eu-west-1\n  payments:stripeKey: {}\n"),
]


# encoded forms: the whole encoded value must go


def encoded(name: str, token: str, value: str, template: str = "{}") -> Secret:
    return Secret(name, template.format(value), token, (value,))


_ENV_LINE = f"ANTHROPIC_API_KEY={ANTHROPIC}\n"
_WRAPPED = base64.encodebytes(f"OPENAI_API_KEY={OPENAI_PROJECT}\n".encode()).decode().rstrip("\n")
_K8S_DATA = base64.b64encode(STRIPE_LIVE.encode()).decode()

SECRETS += [
    encoded("base64-anthropic", ANTHROPIC, base64.b64encode(_ENV_LINE.encode()).decode(), "env_b64: {}"),
    encoded(
        "base64-urlsafe-github",
        GITHUB_PAT,
        base64.urlsafe_b64encode(json.dumps({"token": GITHUB_PAT}).encode()).rstrip(b"=").decode(),
        "state={}",
    ),
    encoded("base64-wrapped-openai", OPENAI_PROJECT, _WRAPPED, "payload: |\n{}\n"),
    encoded(
        "base64-kubernetes-secret-stripe",
        STRIPE_LIVE,
        _K8S_DATA,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: payments\ndata:\n  stripe: {}\n",
    ),
    encoded("base64-aws-key-id", AWS_KEY_ID, base64.b64encode(AWS_KEY_ID.encode()).decode(), "k={}"),
    encoded("percent-encoded-stripe", STRIPE_LIVE, _pct_all(STRIPE_LIVE), "https://pay.example.com/cb?k={}&x=1"),
    encoded(
        "percent-encoded-json-github",
        GITHUB_PAT,
        urllib.parse.quote(json.dumps({"token": GITHUB_PAT}), safe=""),
        "https://ci.example.com/hook?payload={}",
    ),
    encoded(
        "percent-encoded-slack-webhook",
        SLACK_WEBHOOK,
        urllib.parse.quote(SLACK_WEBHOOK, safe=""),
        "redirect_uri={}",
    ),
    encoded("hex-encoded-sendgrid", SENDGRID, SENDGRID.encode().hex(), "blob 0x{}"),
    encoded(
        "base64-of-percent-encoded-password",
        PASSWORD,
        base64.b64encode(("password=" + urllib.parse.quote(PASSWORD, safe="")).encode()).decode(),
        "form: {}",
    ),
]


# split forms: every fragment must go


def split(name: str, token: str, fragments: tuple[str, ...], text: str) -> Secret:
    assert "".join(fragments) == token
    return Secret(name, text, token, fragments)


def halves(token: str, at: int | None = None) -> tuple[str, str]:
    cut = len(token) // 2 if at is None else at
    return token[:cut], token[cut:]


_A1, _A2 = halves(ANTHROPIC, 13)  # "sk-ant-api03-" and the rest
_G1, _G2 = halves(GITHUB_PAT)
_S1, _S2, _S3 = STRIPE_LIVE[:30], STRIPE_LIVE[30:70], STRIPE_LIVE[70:]
_K1, _K2 = halves(AWS_KEY_ID, 4)
_O1, _O2 = halves(OPENAI_PROJECT)
_H1, _H2 = halves(HUGGINGFACE, 12)

SECRETS += [
    split("split-python-concatenation", ANTHROPIC, (_A1, _A2), f'key = "{_A1}" + "{_A2}"'),
    split("split-json-list", GITHUB_PAT, (_G1, _G2), json.dumps({"parts": [_G1, _G2]})),
    split("split-yaml-list", STRIPE_LIVE, (_S1, _S2, _S3), f"parts:\n  - {_S1}\n  - {_S2}\n  - {_S3}\n"),
    split("split-implicit-concatenation", AWS_KEY_ID, (_K1, _K2), f"KEY = ('{_K1}' '{_K2}')"),
    split("split-env-lines", OPENAI_PROJECT, (_O1, _O2), f"OPENAI_KEY_PART1={_O1}\nOPENAI_KEY_PART2={_O2}\n"),
    split("split-js-template-concatenation", HUGGINGFACE, (_H1, _H2), f"const t = `{_H1}` + `{_H2}`;"),
]


# --------------------------------------------------------------------------------------------------
# look-alikes: none of these is a secret

_SHA256 = rand(64, HEX)
_SHA1 = rand(40, HEX)

LOOKALIKES: list[tuple[str, str]] = [
    ("sha256-digest", "sha256:" + _SHA256),
    ("bare-sha256", _SHA256),
    ("sha1-digest", _SHA1),
    ("md5-digest", "md5 " + rand(32, HEX)),
    ("git-commit", f"commit {_SHA1}\nAuthor: Carol <carol@acme.example>"),
    ("short-sha", "fixed in 3f2a9c1 and 8d01be4"),
    ("uuid", "request 8b0a64d2-3f1e-4c7a-9d55-0e2b7c41a9f3 failed"),
    ("uuid-v7", "correlation_id: 019ab5c0-0001-7000-8000-000000000001"),
    ("ulid", "event 01HZX3Q8J5K2M7N9P4R6S8T0VW"),
    ("ami-id", "bastionAmi: ami-0a1b2c3d4e5f60718"),
    ("vpc-id", "vpc-0dev000000000000a vpc-1a2b3c4d"),
    ("subnet-and-sg-ids", "subnets: [subnet-0dev0000000000a1, subnet-0dev0000000000b1], sg: sg-0dev00000000000db"),
    ("instance-id", "i-0123456789abcdef0 is running"),
    ("iam-arn", "arn:aws:iam::123456789012:role/glassbox-deployer"),
    ("secretsmanager-arn", "secret: arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"),
    ("pulumi-urn", "urn:pulumi:prod::network::aws:ec2/securityGroup:SecurityGroup::bastion-sg"),
    ("base64-harmless-text", base64.b64encode(b"Right-size the bastion: t3.small is enough for SSH.").decode()),
    ("base64-urlsafe-harmless", base64.urlsafe_b64encode(b'{"page":2,"sort":"name","dir":"asc"}?').decode()),
    ("semver", "pulumi 3.231.0, pulumi-aws v7.2.1-rc.1+build.5"),
    ("iso-timestamps", "started_at: '2026-11-25T09:00:00+00:00', ended_at: 2026-11-25T09:00:03.123Z"),
    ("long-path", "/usr/local/lib/python3.11/site-packages/pulumi_aws/ec2/security_group_rule.py"),
    ("kubernetes-names", "pod web-frontend-7d4b9c8f6-x2k9p in namespace payments-prod-eu-west-1"),
    ("glassbox-placeholders", "token [REDACTED:github-token] and password: [REDACTED:assigned-secret]"),
    ("glassbox-digests", "evidence_digest: sha256:" + rand(64, HEX) + "\nregistry_digest: sha256:" + rand(64, HEX)),
    ("pulumi-secure-config", "config:\n  data:dbPassword:\n    secure: v1:" + rand(60, B64) + "==\n"),
    ("pulumi-encryption-salt", "encryptionsalt: v1:" + rand(12, B64) + ":v1:" + rand(16, B64) + ":" + rand(32, B64)),
    ("prose-about-passwords", "Right-size the bastion; password rotation is handled by the vault team."),
    ("pulumi-config-call", 'password=config.require_secret("dbPassword"),'),
    ("type-annotation", "    private_key: Ed25519PrivateKey\n    api_token: str | None = None"),
    ("terraform-reference", "  password = random_password.db.result\n  secret_string = var.db_secret"),
    ("templated-url", "DATABASE_URL=postgres://app:${DB_PASSWORD}@db.internal:5432/app"),
    ("actions-secret-expression", "token: ${{ secrets.GITHUB_TOKEN }}"),
    ("bearer-variable", 'curl -H "Authorization: Bearer $TOKEN" https://api.example.com'),
    ("words-with-sk-dash", "the task-runner reported disk-size-analysis-report and risk_test_configuration_loader"),
    ("css-colours", "color: #3f2a9c; background: #ffffff"),
    ("ipv6", "listen on [2001:db8::8a2e:370:7334]:8443"),
    ("image-digest", "image: nginx@sha256:" + rand(64, HEX)),
    ("subresource-integrity", "integrity sha512-" + base64.b64encode(_rng.randbytes(64)).decode()),
    ("ssh-public-key", "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + _rng.randbytes(36)).decode()),
    ("certificate", p("-----BEGIN ", "CERTIFICATE-----\n") + _b64_lines(400) + p("\n-----END ", "CERTIFICATE-----")),
    ("public-key", p("-----BEGIN ", "PUBLIC KEY-----\n") + _b64_lines(90) + p("\n-----END ", "PUBLIC KEY-----")),
    ("secret-key-ref", "secretKeyRef:\n  name: db-credentials\n  key: password"),
    ("ssm-parameter-path", "parameter: /prod/orders/db/password"),
    ("token-counts", "token_count: 12345\nmax_tokens: 4096\ninput_tokens: 812"),
    ("evidence-hashes", f"args_sha256: {rand(64, HEX)}\nresult_sha256: {rand(64, HEX)}"),
    ("snake-case-identifier", "aws_s3_bucket_public_access_block_configuration_rule_enabled"),
    (
        "camel-case-class",
        "aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(",
    ),
    ("git-ssh-url", "ssh://git@github.com/acme/infra.git and git@github.com:acme/infra.git"),
    ("ed25519-signature", "sig: " + base64.b64encode(_rng.randbytes(64)).decode()),
    ("key-id", "keyid: " + rand(64, HEX)),
    ("hex-of-harmless-text", "0x" + b"Right-size the bastion host in dev".hex()),
    ("percent-encoded-harmless", "https://example.com/search?q=hello%20world%21&lang=en%2DGB"),
    ("json-list-of-zones", json.dumps({"zones": ["eu-west-1a", "eu-west-1b", "eu-west-1c"]})),
    ("yaml-list-of-subnets", "privateSubnetIds:\n  - subnet-0dev0000000000a1\n  - subnet-0dev0000000000b1\n"),
    ("python-versions", "python3.11 -m venv .venv && pip install pulumi==3.231.0"),
    ("mixed-case-heading", "## Rotating the GitHubAppPrivateKeyForDeployments Secret"),
]
