"""Attack: script injection into the auditor's HTML report. Agents and people write PR titles, reasons, rule
messages, URNs, file names and ticket ids that end up on the page; a `<script>`, an attribute break-out
(`"onerror=`) or a `</table>` must arrive as text, never as markup — in element text, in attributes (hover
titles), in the `audit verify` findings table and in the SVG charts."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from bot.audit.report import ReportRequest, build_report
from bot.records import Outcome
from tests.audit_world import build_world

SCRIPT = "<script>alert(1)</script>"
ATTR = '"onerror=alert(2) x="'
TABLE = "</table></section><h1>owned</h1>"
URN = f"urn:pulumi:prod::data::aws:rds/instance:Instance::{SCRIPT}"


class _Markup(HTMLParser):
    """Every tag and attribute the browser would build."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs


def test_hostile_pr_titles_rule_messages_and_urns_are_escaped(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    clean = build_report(ReportRequest(ledger=world.ledger.path, repo=world.repo_dir, attestations=world.attestations))
    world.event(
        "glassbox-bot", "propose", Outcome.DENY, reason=f"PR title: {SCRIPT} {ATTR} {TABLE}", pr=9, repo='acme/"x',
        agent_id=f"agent{ATTR}", requested_by=TABLE, reasons=[f"GB-NET-001 (critical): {ATTR} [{URN}]", TABLE],
    )  # fmt: skip
    world.event(
        "glassbox-ci", "check", Outcome.DENY, pr=9, commit="b" * 40, result="FAILED", risk=f"high{ATTR}",
        findings=[{"rule_id": f"GB-X{SCRIPT}", "status": "deny", "severity": ATTR, "message": TABLE}],
        errors=[f"resource {URN} {TABLE}"],
    )  # fmt: skip
    # a file name and a break-glass ticket reach the `audit verify` findings at the top of the page
    pushed = world.direct_push({f"infra/{ATTR}{SCRIPT}.yaml": "x: 1\n"})
    world.deploy(pushed, grant="g-1", ticket=f"INC{SCRIPT}{ATTR}")

    page = build_report(
        ReportRequest(ledger=world.ledger.path, repo=world.repo_dir, attestations=world.attestations)
    ).html
    markup = _Markup()
    markup.feed(page)
    baseline = _Markup()
    baseline.feed(clean.html)
    assert "script" not in markup.tags and "h1" in markup.tags and markup.tags.count("h1") == 1
    assert not any(name.startswith("on") for name, _ in markup.attrs)  # no attribute broke out
    assert markup.tags.count("table") > baseline.tags.count("table")  # the new rows are real rows...
    assert page.count("</table>") == markup.tags.count("table")  # ...and no injected </table> closed one early
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;/table&gt;&lt;/section&gt;&lt;h1&gt;owned&lt;/h1&gt;" in page
    assert "&#34;onerror=alert(2) x=&#34;" in page
    findings = page[page.index('id="findings"') : page.index('id="integrity"')]
    assert "infra/&#34;onerror=alert(2) x=&#34;&lt;script&gt;" in findings  # the pushed file's name, as text
    assert "INC&lt;script&gt;" in page  # the ticket, in the break-glass hover title and finding
    svg = page[page.index("<svg") : page.rindex("</svg>")]
    assert "<script" not in svg.lower() and "agent&#34;onerror" in svg  # the agent id labels a chart bar
