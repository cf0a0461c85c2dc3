"""The compiled engines the policy tests compare, one of each per test module."""

from __future__ import annotations

import pytest

from bot.policy.engines.opa_embedded import EmbeddedOpaEngine
from bot.policy.engines.regopy import RegopyEngine
from bot.policy.engines.regorus import RegorusEngine
from bot.policy.pack import load_pack


@pytest.fixture(scope="module")
def opa() -> EmbeddedOpaEngine:
    return EmbeddedOpaEngine(load_pack())


@pytest.fixture(scope="module")
def regopy() -> RegopyEngine:
    return RegopyEngine(load_pack(), mode="bundle")


@pytest.fixture(scope="module")
def regorus() -> RegorusEngine:
    return RegorusEngine(load_pack())
