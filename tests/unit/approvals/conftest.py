"""Fixtures the approvals service tests share: the bot's signing key and an empty ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.trust.keys import Signer, generate_key
from bot.trust.ledger import Ledger


@pytest.fixture
def bot_signer(tmp_path: Path) -> Signer:
    return generate_key(tmp_path / "keys", "glassbox-bot")


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.jsonl")
