"""The plan cache with the real sandbox: a plan computed once is read back equal to a fresh one, every input of the
key retires an entry, and the cache refuses directories where it could be read or written by others."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import bot
from bot.errors import UserError
from bot.plan import PlanCache, Sandbox, build_plan, plan_change
from bot.plan import cache as cache_module
from bot.plan.jail import Limits
from bot.registry import EstateFile, EstateProject, EstateStack
from tests.plan_helpers import commit_all, edit, infra_repo

pytestmark = pytest.mark.slow


@dataclasses.dataclass(frozen=True)
class Estate:
    path: Path
    base: str
    head: str  # network/dev keeps its flow logs 14 days instead of 30
    later: str  # then 7


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Estate:
    path = tmp_path_factory.mktemp("estate")
    repo = infra_repo(path, projects=("network",))
    base = repo.head.commit.hexsha
    edit(repo, "infra/network/Pulumi.dev.yaml", "flowLogRetentionDays: 30", "flowLogRetentionDays: 14")
    head = commit_all(repo, "network/dev: two weeks of flow logs")
    edit(repo, "infra/network/Pulumi.dev.yaml", "flowLogRetentionDays: 14", "flowLogRetentionDays: 7")
    later = commit_all(repo, "network/dev: one week of flow logs")
    return Estate(path, base, head, later)


def sources(planned: object) -> dict[str, str]:
    return {s.side: s.cache for s in planned.sources}  # type: ignore[attr-defined]


def entries(directory: Path) -> list[Path]:
    return sorted((directory / cache_module.ENTRIES_DIR).rglob("*.json"))


def test_a_plan_is_computed_once_and_read_back_equal_to_a_fresh_one(estate: Estate, tmp_path: Path) -> None:
    cache = PlanCache(tmp_path / "cache")
    first = plan_change(estate.path, estate.base, estate.head, cache=cache)
    assert sources(first) == {"base": "miss", "head": "miss"}
    again = plan_change(estate.path, estate.base, estate.head, cache=cache)
    assert sources(again) == {"base": "hit", "head": "hit"}
    assert [(s.project, s.stack) for s in again.sources] == [("network", "dev"), ("network", "dev")]
    # what deploy recomputes (no cache) has the same digest: a cached plan never makes deploy refuse
    fresh = build_plan(estate.path, estate.base, estate.head)
    assert again.plan == first.plan and again.plan.digest == fresh.digest
    assert [c.name for c in again.plan.changes] == ["vpc-flow-logs"]

    # a new head plans only the head; its base is the same as before
    moved = plan_change(estate.path, estate.base, estate.later, cache=cache)
    assert sources(moved) == {"base": "hit", "head": "miss"}
    assert moved.plan.digest == build_plan(estate.path, estate.base, estate.later).digest
    # keys are content and side: the old head is planned once more as a base (a program can tell the sides
    # apart), the later head is the one already kept
    assert sources(plan_change(estate.path, estate.head, estate.later, cache=cache)) == {"base": "miss", "head": "hit"}

    # private: the directory 0700, the key and every entry 0600
    assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cache.directory / cache_module.KEY_FILE).st_mode) == 0o600
    assert len(entries(cache.directory)) == 4
    assert {stat.S_IMODE(p.stat().st_mode) for p in entries(cache.directory)} == {0o600}
    assert (cache.hits, cache.rejected) == (4, 0)


REGISTERED = EstateFile(
    projects=[
        EstateProject(name="network", directory="infra/network", stacks=[EstateStack(name="dev", environment="dev")])
    ]
)


@pytest.fixture(scope="module")
def populated(estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding both sides of base..head, planned with the estate REGISTERED."""
    cache = PlanCache(tmp_path_factory.mktemp("populated") / "cache")
    planned = plan_change(estate.path, estate.base, estate.head, cache=cache, estate=REGISTERED)
    assert sources(planned) == {"base": "miss", "head": "miss"}
    return cache.directory


@pytest.mark.parametrize(
    "variant",
    ["nothing", "limits", "timeout", "estate", "modules", "distributions", "glassbox"],
)
def test_every_input_of_the_key_retires_an_entry(
    estate: Estate, populated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    shutil.copytree(populated, tmp_path / "cache")
    cache = PlanCache(tmp_path / "cache")
    registered = REGISTERED
    kwargs: dict[str, object] = {"estate": registered}
    if variant == "limits":
        kwargs["sandbox"] = Sandbox(limits=dataclasses.replace(Limits(), processes=Limits().processes - 1))
    elif variant == "timeout":
        kwargs["timeout"] = 119
    elif variant == "estate":
        staging = EstateStack(name="dev", environment="staging")
        kwargs["estate"] = registered.model_copy(
            update={"projects": [registered.projects[0].model_copy(update={"stacks": [staging]})]}
        )
    elif variant == "modules":
        monkeypatch.setattr(cache_module, "modules_digest", lambda: "sha256:" + "1" * 64)
    elif variant == "distributions":
        monkeypatch.setattr(cache_module, "installed_distributions", lambda: ["pulumi_aws-0.0.1.dist-info"])
    elif variant == "glassbox":
        monkeypatch.setattr(bot, "__version__", "0.0.0-other")
    changed = plan_change(estate.path, estate.base, estate.head, cache=cache, **kwargs)  # type: ignore[arg-type]
    expected = "hit" if variant == "nothing" else "miss"
    assert sources(changed) == {"base": expected, "head": expected}


def test_the_modules_digest_follows_the_mock_cloud_and_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = Path(bot.__file__).resolve().parent
    copy = tmp_path / "bot"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(bot, "__file__", str(copy / "__init__.py"))
    before = cache_module.modules_digest()
    assert before == cache_module.modules_digest()
    for module in ("plan/mockcloud.py", "plan/collector.py", "plan/sandbox.py", "plan/runner.py", "records.py"):
        target = copy / module
        original = target.read_text()
        target.write_text(original + "\n# changed\n")
        assert cache_module.modules_digest() != before, module
        target.write_text(original)
    assert cache_module.modules_digest() == before


def test_the_cache_is_not_used_without_the_sandbox(estate: Estate, tmp_path: Path) -> None:
    cache = PlanCache(tmp_path / "cache")
    planned = plan_change(estate.path, estate.base, estate.head, cache=cache, sandbox=Sandbox(mode="none"))
    assert sources(planned) == {"base": "off", "head": "off"}
    assert entries(cache.directory) == [] and cache.hits == cache.misses == 0


def test_the_environment_turns_it_off_or_moves_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "here"
    monkeypatch.setenv(cache_module.DIR_ENV, str(here))
    assert cache_module.configured_cache(enabled=False) is None  # --no-plan-cache
    monkeypatch.setenv(cache_module.ENABLE_ENV, "off")
    assert cache_module.configured_cache() is None
    assert not here.exists()
    monkeypatch.setenv(cache_module.ENABLE_ENV, "on")
    found = cache_module.configured_cache()
    assert found is not None and found.directory == here and (here / cache_module.KEY_FILE).is_file()
    # by default it lives in glassbox's user data directory, beside the deploy state, outside any repository
    monkeypatch.delenv(cache_module.DIR_ENV)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_module.default_cache_dir() == tmp_path / "home/.local/share/glassbox/plan-cache"


def test_a_directory_others_can_reach_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    with pytest.raises(UserError, match="mode 0755"):
        PlanCache(loose)
    good = PlanCache(tmp_path / "good")
    (good.directory / cache_module.KEY_FILE).chmod(0o644)
    with pytest.raises(UserError, match="mode 0644"):
        PlanCache(good.directory)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "good")
    with pytest.raises(UserError, match="not a directory"):
        PlanCache(link)


def test_a_directory_the_sandbox_sees_is_refused_before_anything_is_written() -> None:
    # sys.prefix is bound read-only into every sandbox, so a key kept under it would be readable by PR code
    inside = Path(sys.prefix) / f"glassbox-plan-cache-{uuid.uuid4().hex}"
    with pytest.raises(UserError, match="plan sandbox can read"):
        PlanCache(inside)
    assert not inside.exists()


def test_a_cache_inside_the_planned_repository_is_refused(estate: Estate) -> None:
    inside = estate.path / ".plan-cache"
    try:
        with pytest.raises(UserError, match="inside the repository"):
            plan_change(estate.path, estate.base, estate.head, cache=PlanCache(inside))
    finally:
        shutil.rmtree(inside, ignore_errors=True)


def test_a_key_held_apart_is_used_and_the_directory_key_is_never_read(
    estate: Estate, populated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # entries made under the directory's own key do not verify under a key held apart, and vice versa
    shutil.copytree(populated, tmp_path / "cache")
    secret = os.urandom(cache_module.KEY_BYTES)
    apart = PlanCache(tmp_path / "cache", mac_key=secret)
    kwargs: dict[str, object] = {"estate": REGISTERED}
    assert sources(plan_change(estate.path, estate.base, estate.head, cache=apart, **kwargs)) == {  # type: ignore[arg-type]
        "base": "miss",
        "head": "miss",
    }
    assert apart.rejected == 2
    assert sources(plan_change(estate.path, estate.base, estate.head, cache=apart, **kwargs)) == {  # type: ignore[arg-type]
        "base": "hit",
        "head": "hit",
    }
    own = PlanCache(tmp_path / "cache")
    assert sources(plan_change(estate.path, estate.base, estate.head, cache=own, **kwargs)) == {  # type: ignore[arg-type]
        "base": "miss",
        "head": "miss",
    }
    # a fresh directory under a key held apart never gets a key file
    fresh = PlanCache(tmp_path / "fresh", mac_key=secret)
    assert not (fresh.directory / cache_module.KEY_FILE).exists()
    # the environment: 64 hex digits, else an error naming the variable and how to make one
    monkeypatch.setenv(cache_module.DIR_ENV, str(tmp_path / "env"))
    monkeypatch.setenv(cache_module.KEY_ENV, secret.hex())
    configured = cache_module.configured_cache()
    assert configured is not None and configured.external_key
    for bad in ("abc", "zz" * 32, (secret[:16]).hex()):
        monkeypatch.setenv(cache_module.KEY_ENV, bad)
        with pytest.raises(UserError, match=f"{cache_module.KEY_ENV} must be at least 32 bytes as hex"):
            cache_module.configured_cache()


def test_the_least_recently_used_entries_go_when_the_cache_outgrows_its_size(
    populated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(populated, tmp_path / "cache")
    kept = entries(tmp_path / "cache")
    assert len(kept) == 2
    sizes = {p: p.stat().st_size for p in kept}
    older, newer = kept
    os.utime(older, (1_000_000, 1_000_000))
    os.utime(newer, (2_000_000, 2_000_000))
    # room for the larger of the two only: opening the cache prunes the one used least recently
    cache = PlanCache(tmp_path / "cache", max_bytes=max(sizes.values()))
    assert entries(cache.directory) == [newer] and cache.evicted == 1
    # within the limit nothing goes
    assert cache.prune() == 0 and entries(cache.directory) == [newer]
    monkeypatch.setenv(cache_module.MAX_BYTES_ENV, "0")
    with pytest.raises(UserError, match=f"{cache_module.MAX_BYTES_ENV} must be a whole number of megabytes"):
        cache_module.max_bytes()
    monkeypatch.setenv(cache_module.MAX_BYTES_ENV, "3")
    assert cache_module.max_bytes() == 3 << 20


def test_a_hit_marks_its_entry_recently_used(estate: Estate, populated: Path, tmp_path: Path) -> None:
    shutil.copytree(populated, tmp_path / "cache")
    for path in entries(tmp_path / "cache"):
        os.utime(path, (1_000_000, 1_000_000))
    cache = PlanCache(tmp_path / "cache")
    planned = plan_change(estate.path, estate.base, estate.head, cache=cache, estate=REGISTERED)
    assert sources(planned) == {"base": "hit", "head": "hit"}
    assert all(p.stat().st_mtime > 1_000_000 for p in entries(cache.directory))


def test_an_entry_written_behind_is_on_disk_for_the_next_read(
    estate: Estate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PlanCache(tmp_path / "cache")
    writing = cache_module.threading.Event()
    put = cache.put

    def slow_put(*args: object) -> None:
        writing.wait(30)  # the writer is held until the plan has been handed back
        put(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(cache, "put", slow_put)
    first = plan_change(estate.path, estate.base, estate.head, cache=cache, write_behind=True)
    assert sources(first) == {"base": "miss", "head": "miss"}
    assert entries(cache.directory) == []  # the plan came back before its entries were written
    writing.set()
    # a read waits for the writes begun before it: the same change is served from the cache, whole
    again = plan_change(estate.path, estate.base, estate.head, cache=cache, write_behind=True)
    assert sources(again) == {"base": "hit", "head": "hit"} and again.plan == first.plan
    assert len(entries(cache.directory)) == 2 and cache.rejected == 0


def test_a_failed_write_behind_costs_a_plan_and_nothing_else(
    estate: Estate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = PlanCache(tmp_path / "cache")

    def broken_put(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cache, "put", broken_put)
    first = plan_change(estate.path, estate.base, estate.head, cache=cache, write_behind=True)
    cache.settle()
    assert "could not keep entry" in caplog.text and "disk on fire" in caplog.text
    monkeypatch.undo()
    again = plan_change(estate.path, estate.base, estate.head, cache=cache)
    assert sources(again) == {"base": "miss", "head": "miss"} and again.plan == first.plan


def test_an_entry_put_soon_waits_for_its_release_and_is_written_behind_it(estate: Estate, tmp_path: Path) -> None:
    cache = PlanCache(tmp_path / "cache")
    first = plan_change(estate.path, estate.base, estate.head, cache=cache, write_behind=True)
    assert entries(cache.directory) == []  # held: the check that planned is still judging
    cache.release()  # the verdict is made: the writes start, and the caller does not wait for them
    cache.settle()
    assert len(entries(cache.directory)) == 2
    again = plan_change(estate.path, estate.base, estate.head, cache=cache)
    assert sources(again) == {"base": "hit", "head": "hit"} and again.plan == first.plan


def test_a_released_entry_is_on_disk_when_the_process_exits_at_once(estate: Estate, tmp_path: Path) -> None:
    # as `glassbox ci pull-request` ends right after its verdict: the interpreter's exit waits for the write
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from bot.plan import plan_change\n"
        "from bot.plan.cache import PlanCache\n"
        "cache = PlanCache(Path(sys.argv[1]))\n"
        "plan_change(Path(sys.argv[2]), sys.argv[3], sys.argv[4], cache=cache, write_behind=True)\n"
        "cache.release()\n"
    )
    cache_dir = tmp_path / "cache"
    subprocess.run(
        [sys.executable, "-c", script, str(cache_dir), str(estate.path), estate.base, estate.head],
        check=True,
        cwd=Path(__file__).resolve().parents[3],
        timeout=300,
    )
    assert len(entries(cache_dir)) == 2
    again = plan_change(estate.path, estate.base, estate.head, cache=PlanCache(cache_dir))
    assert sources(again) == {"base": "hit", "head": "hit"}


def test_an_entry_verified_once_is_answered_from_memory_and_a_later_edit_changes_nothing(
    estate: Estate, tmp_path: Path
) -> None:
    cache = PlanCache(tmp_path / "cache")
    first = plan_change(estate.path, estate.base, estate.head, cache=cache)
    verified = plan_change(estate.path, estate.base, estate.head, cache=cache)
    assert sources(verified) == {"base": "hit", "head": "hit"}
    for path in entries(cache.directory):  # edited on disk after this process verified them
        path.write_text(path.read_text().replace('"protect":false', '"protect":true'))
    again = plan_change(estate.path, estate.base, estate.head, cache=cache)
    assert sources(again) == {"base": "hit", "head": "hit"} and again.plan == first.plan and cache.rejected == 0
    fresh = PlanCache(tmp_path / "cache")  # another process reads the edited entries: rejected, planned again
    replanned = plan_change(estate.path, estate.base, estate.head, cache=fresh)
    assert sources(replanned) == {"base": "miss", "head": "miss"} and fresh.rejected == 2
    assert replanned.plan == first.plan
