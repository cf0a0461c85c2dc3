from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.forge_helpers import ForgeEnv, forge_env


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeEnv]:
    yield from forge_env(tmp_path)
