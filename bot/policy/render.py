"""Renderers of a verdict: SARIF 2.1.0 for code scanning and the markdown summary a reviewer reads first.

Both read the ``Verdict`` record (and the plan's changes for the table); neither recomputes a decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.markdown import render as render_markdown
from bot.records import FindingStatus, RiskTier, Verdict

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {FindingStatus.DENY: "error", FindingStatus.WARN: "warning", FindingStatus.WAIVED: "note"}
_SECURITY_SEVERITY = {RiskTier.LOW: "3.0", RiskTier.MEDIUM: "5.5", RiskTier.HIGH: "8.0", RiskTier.CRITICAL: "9.5"}


def artifact_for(resource: str | None) -> str:
    """The repository file a finding points at: the project program for a Pulumi URN, else the path itself."""
    if resource and resource.startswith("urn:pulumi:"):
        parts = resource.split("::")
        if len(parts) >= 2:
            return f"infra/{parts[1]}/__main__.py"
    if resource and "/" in resource and not resource.startswith("urn:") and " " not in resource:
        return resource
    return "infra"


def sarif(verdict: Verdict) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for f in verdict.findings:
        rule_key = f"{f.engine}:{f.rule_id}"
        rules.setdefault(
            rule_key,
            {
                "id": rule_key,
                "name": f.rule_id,
                "shortDescription": {"text": f.message.split("\n", 1)[0][:200] or f.rule_id},
                "help": {"text": f.remediation or "See the policy pack for the rule's rationale."},
                "properties": {
                    "security-severity": _SECURITY_SEVERITY[f.severity],
                    "tags": ["security", "glassbox", f.engine, *f.controls],
                },
            },
        )
        result: dict[str, Any] = {
            "ruleId": rule_key,
            "level": _LEVEL[f.status],
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {"artifactLocation": {"uri": artifact_for(f.resource)}},
                    "logicalLocations": [{"fullyQualifiedName": f.resource or "(change)"}],
                }
            ],
            "properties": {"severity": f.severity.value, "status": f.status.value, "controls": f.controls},
        }
        if f.waiver is not None:
            result["suppressions"] = [{"kind": "external", "justification": f.waiver.justification}]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "glassbox",
                        "informationUri": "https://glassbox.dev",
                        "version": verdict.verifier.get("glassbox", "0"),
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
                "properties": {
                    "result": verdict.result.value,
                    "risk": verdict.risk.value,
                    "headCommit": verdict.change.head_commit,
                },
            }
        ],
    }


def summary_markdown(verdict: Verdict, changes: Sequence[Mapping[str, Any]] = ()) -> str:
    """The check's summary for people (the PR comment and the step summary), from ``check_summary.md.j2``."""
    groups = [
        (severity.value, [f for f in verdict.findings if f.severity is severity])
        for severity in reversed(list(RiskTier))
    ]
    return render_markdown("check_summary.md.j2", v=verdict, groups=[g for g in groups if g[1]], changes=list(changes))
