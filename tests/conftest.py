"""Suite-wide: the plan cache of every command a test runs lives in the session's temporary directory, never under
the HOME of whoever runs the tests (its default)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.plan.cache import DIR_ENV


@pytest.fixture(autouse=True, scope="session")
def _plan_cache_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DIR_ENV, str(tmp_path_factory.mktemp("plan-cache") / "cache"))
        yield
