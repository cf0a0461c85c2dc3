"""Plan tests: close every git repository a test opened, so no `git cat-file` pipe outlives it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.plan_helpers import close_repos


@pytest.fixture(autouse=True)
def _close_repos() -> Iterator[None]:
    yield
    close_repos()
