"""Opening a PR costs the same number of API calls whatever the number of files."""

from __future__ import annotations

import pytest

from tests.forge_helpers import ForgeEnv, changes

AGENT = "patch-agent"


@pytest.mark.parametrize("labels", [(), ("glassbox",)])
def test_pr_call_count_is_constant_from_1_to_200_files(forge: ForgeEnv, labels: tuple[str, ...]) -> None:
    agent = forge.client(AGENT)
    counts = {}
    for n in (1, 10, 200):
        forge.admin("DELETE", "/_glassbox/stats")
        before = agent.calls
        pr = agent.open_pull_request(
            base="main",
            branch=f"glassbox/{AGENT}/count-{n}-{len(labels)}",
            title=f"{n} files",
            body="",
            changes=changes(n, prefix=f"infra/network/n{n}"),
            labels=labels,
        )
        counts[n] = agent.calls - before
        # the client's own count agrees with what the server saw
        assert forge.stats()["requests"] == counts[n]
        assert len(agent.list_changed_files(pr.number)) == n
    assert counts[1] == counts[10] == counts[200] <= 8
    assert counts[1] == (7 if labels else 6)
