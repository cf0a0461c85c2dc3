"""Fixtures for deploy tests: a registry copy with real keys, a real ledger, a deploy state directory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.deploy.broker import CredentialBroker, ReplayStore, deploy_trust
from bot.deploy.events import EventSink
from bot.records import AuditEvent
from bot.registry import Registry, load_registry
from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger, ledger_keys
from tests.factories import registry_with_keys

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
COMMIT = "1" * 40
OTHER_COMMIT = "2" * 40
STACK = "data/prod"


@dataclass
class DeployEnv:
    tmp: Path
    registry: Registry
    signers: dict[str, Signer]
    mallory: Signer  # a key nobody trusts
    ledger: Ledger
    state: Path
    broker: CredentialBroker
    sink: EventSink
    trusted: dict[str, bytes]
    replay: ReplayStore

    def events(self, action: str | None = None) -> list[AuditEvent]:
        return [e for e in self.ledger.events() if action is None or e.action == action]

    def ledger_ok(self) -> bool:
        report = self.ledger.verify(ledger_keys(self.registry))
        return report.ok


@pytest.fixture
def env(tmp_path: Path) -> DeployEnv:
    root, signers = registry_with_keys(
        tmp_path,
        ("glassbox-deployer", ["deploy-signer", "ledger-signer"]),
        ("glassbox-ci", ["verdict-signer", "ledger-signer"]),
        ("carol", ["commit-signer", "ledger-signer"]),  # sre-oncall: break_glass
        ("alice", ["commit-signer", "ledger-signer"]),  # security: no break_glass
    )
    registry = load_registry(root)
    ledger = Ledger(tmp_path / "ledger" / "ledger.jsonl")
    deployer = signers["glassbox-deployer"]
    sink = EventSink(ledger, deployer)
    state = tmp_path / "deploy-state"
    return DeployEnv(
        tmp=tmp_path,
        registry=registry,
        signers=signers,
        mallory=generate_key(tmp_path / "mallory-keys", "mallory"),
        ledger=ledger,
        state=state,
        broker=CredentialBroker.for_registry(registry, deployer, sink=sink),
        sink=sink,
        trusted=deploy_trust(registry),
        replay=ReplayStore.under(state),
    )


def resource(
    name: str, inputs: dict[str, Any], *, stack: str = STACK, rtype: str = "aws:s3/bucket:Bucket"
) -> dict[str, Any]:
    """A plan resource in the docs/contracts.md shape."""
    project, stack_name = stack.split("/")
    return {
        "urn": f"urn:pulumi:{stack_name}::{project}::{rtype}::{name}",
        "project": project,
        "stack": stack_name,
        "environment": stack_name,
        "type": rtype,
        "name": name,
        "parent": None,
        "provider": None,
        "protect": False,
        "dependencies": [],
        "inputs": inputs,
    }
