"""`audit report --html` over the demo's real trail, as a person sees it: rendered by headless Chromium (DOM text
and a screenshot), plus the checks that need no browser: untrusted ledger text is escaped, and a tampered
ledger line turns the page's marks red."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bot.audit.history import VerifyRequest, verify_history
from bot.audit.report import ReportRequest, build_report
from bot.commands import audit as audit_cmd
from bot.commands import audit_report
from bot.demo import REPO, run_demo
from bot.errors import IntegrityError
from bot.forge.server import repo_path
from bot.records import Actor, ActorKind, Outcome, Subject
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger
from tests.factories import REPO_ROOT, registry_with_keys

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium is not installed (Debian package `chromium`, /usr/bin/chromium)"
)


@dataclass
class Trail:
    root: Path
    ledger: Path
    repo: Path
    scenarios: list[dict[str, Any]]

    def args(self, html: Path, ledger: Path | None = None) -> list[str]:
        return [
            "audit", "report", "--html", str(html), "--ledger", str(ledger or self.ledger), "--repo", str(self.repo),
            "--attestations", str(self.root / "attestations"), "--deploy-state", str(self.root / "deploy-state"),
        ]  # fmt: skip


def _app() -> typer.Typer:
    app = typer.Typer()
    audit_cmd.register(app)
    audit_report.register(app)
    return app


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Trail:
    root = tmp_path_factory.mktemp("report") / "demo"
    run_demo(REPO_ROOT, root, say=lambda s: None)
    summary = json.loads((root / "summary.json").read_text())
    return Trail(root, root / "ledger.jsonl", repo_path(root / "forge", REPO), summary["scenarios"])


@pytest.fixture(scope="module")
def report(trail: Trail) -> Path:
    out = trail.root.parent / "report.html"
    result = CliRunner().invoke(_app(), trail.args(out))
    assert result.exit_code == 0, result.output
    assert "ledger verified, 0 link(s) that do not verify" in result.output
    return out


class _Text(HTMLParser):
    """The text a reader sees: everything outside <head>, <style> and <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: Sequence[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("head", "style", "script")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("head", "style", "script")

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.parts.append(data.strip())


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]  # fmt: skip
    command = [str(CHROMIUM), *flags, f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


@needs_chromium
@pytest.mark.e2e
@pytest.mark.slow
def test_a_person_sees_every_chain_verified_in_chromium(trail: Trail, report: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    parser = _Text()
    parser.feed(dom)
    text = "\n".join(parser.parts)
    for s in trail.scenarios:
        if s["correlation_id"]:
            assert s["correlation_id"] in text, s["name"]
    assert "✔ verified: " in text and "signed, hash-chained events" in text
    assert "GB-NET-001" in text  # the world-open SSH change, denied at pre-flight
    assert "refused at proposal" in text and "deploy refused" in text and "deployed" in text
    for heading in (
        "Ledger integrity",
        "Decision chains",
        "Governance metrics",
        "Auto-approved (per agent)",
        "Policy denial rate (per agent)",
        "Escalations (per agent)",
    ):
        assert heading in text
    assert dom.count('class="mark ok"') > 20 and 'class="mark bad"' not in dom  # ✔ everywhere, no ✘
    assert "0\nlinks that do not verify" in text
    assert "<script" not in dom.lower()
    # `audit verify`'s findings head the page, each with what to do
    assert text.index("What audit verify reports") < text.index("Ledger integrity")
    for kind in ("out-of-band-merge", "direct-push", "break-glass-deploy"):
        assert kind in text
    assert "confirm the ticket" in text and "INC-4711" in text
    # the incident deploy wears the amber break-glass badge, not the green "deployed"
    incident = next(s["correlation_id"] for s in trail.scenarios if s["name"].startswith("break-glass deploy"))
    block = dom[dom.index(f'id="d-{incident}"') :]
    assert '<span class="pill bg"' in block[: block.index("</div>", block.index("dhead"))]
    assert dom.count('class="pill bg"') == 1
    # trust from the newest governed merge (PR #2), never from the direct push at main's head
    history = verify_history(
        VerifyRequest(ledger=trail.ledger, repo=trail.repo, attestations=trail.root / "attestations")
    )
    assert history.trust_anchor_pr == 2 and history.trust_anchor != history.branch_head
    assert f"registry/ at {str(history.trust_anchor)[:12]} (PR #2)" in text
    # steps never reached collapse into one line; only gaps (a missing link before a later one) keep a box
    assert "no event\n" not in text + "\n" and "not reached: check, approvals, merge, deploy" in text

    shot = tmp_path / "report.png"
    _chromium(tmp_path, "--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000


@pytest.mark.e2e
@pytest.mark.slow
def test_a_tampered_ledger_line_shows_as_broken(trail: Trail, tmp_path: Path) -> None:
    tampered = tmp_path / "ledger.jsonl"
    lines = trail.ledger.read_text(encoding="utf-8").splitlines(keepends=True)
    check = next(i for i, line in enumerate(lines) if '"action":"check"' in line)
    lines[check] = lines[check].replace('"risk":"low"', '"risk":"critical"', 1)
    assert lines[check] != trail.ledger.read_text(encoding="utf-8").splitlines(keepends=True)[check]
    tampered.write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(_app(), trail.args(out, tampered))
    assert isinstance(result.exception, IntegrityError)  # bot.cli maps it to exit 1; the page is still written
    page = out.read_text(encoding="utf-8")
    assert "✘ broken: " in page and f"seq {check + 1}: edited" in page
    assert "attestation disagrees" in page  # the attestation still says low


def test_untrusted_ledger_text_is_escaped(tmp_path: Path) -> None:
    registry, signers = registry_with_keys(tmp_path, ("cost-optimizer", ["ledger-signer"]))
    ledger = Ledger(tmp_path / "ledger.jsonl")
    hostile = "<script>alert(1)</script>"
    ledger.append(
        signers["cost-optimizer"],
        actor=Actor(id="cost-optimizer", kind=ActorKind.AGENT),
        action="propose",
        outcome=Outcome.DENY,
        reason=hostile,
        correlation_id="019378a2-7f3c-7c4e-9b1a-2d3e4f5a6b01",
        subject=Subject(repo='acme/"infra"'),
        details={"agent_id": '<img src=x onerror="alert(2)">', "reasons": [hostile], "paths": ["a&b"]},
        time=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    )
    page = build_report(ReportRequest(ledger=ledger.path, registry=registry)).html
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page  # MarkupSafe writes " as &#34;
    svg = page[page.index("<svg") : page.rindex("</svg>")]
    assert "&lt;img src=x" in svg  # the agent id labels a chart bar, escaped there too
    assert "acme/&#34;infra&#34;" in page
    assert "✔ verified: 1 signed, hash-chained events" in page


def test_without_a_trust_anchor_the_page_says_signatures_were_not_checked(tmp_path: Path) -> None:
    signer: Signer = generate_key(tmp_path / "keys", "cost-optimizer")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(
        signer, actor=Actor(id="cost-optimizer", kind=ActorKind.AGENT), action="propose", outcome=Outcome.ALLOW
    )
    result = build_report(ReportRequest(ledger=ledger.path))
    assert not result.verified and not result.signatures_checked
    assert "signatures NOT checked (no trust anchor" in result.html
    shutil.rmtree(tmp_path / "keys")
