"""CODEOWNERS: GitHub's documented semantics, table-driven (cases written from GitHub's example file)."""

from __future__ import annotations

import pytest

from bot.approvals import codeowners as co
from tests.factories import REPO_ROOT

# (pattern, path, matches)
MATCHING = [
    # no slash: any depth
    ("*", "README.md", True),
    ("*", "a/b/c.py", True),
    ("*.js", "app.js", True),
    ("*.js", "src/deep/app.js", True),
    ("*.js", "app.jsx", False),
    ("*.JS", "app.js", False),  # paths are case-sensitive
    ("CODEOWNERS", ".github/CODEOWNERS", True),
    # leading slash anchors at the root; a trailing slash means a directory and everything below it
    ("/build/logs/", "build/logs/x.log", True),
    ("/build/logs/", "build/logs/a/b.log", True),
    ("/build/logs/", "src/build/logs/x.log", False),
    ("/build/logs/", "build/logs", False),  # a file named like the directory is not the directory
    ("/docs/", "docs/a/b.md", True),
    ("/docs/", "x/docs/a.md", False),
    # trailing slash without a leading one: a directory of that name anywhere
    ("apps/", "apps/x.js", True),
    ("apps/", "src/apps/y/z.js", True),
    ("apps/", "apps", False),
    # dir/*: direct children only (GitHub's documented exception to gitignore)
    ("docs/*", "docs/getting-started.md", True),
    ("docs/*", "docs/build-app/troubleshooting.md", False),
    ("docs/*", "src/docs/x.md", False),  # a slash inside anchors at the root
    # ** crosses directories, * does not
    ("**/logs", "build/logs/a.txt", True),
    ("**/logs", "scripts/logs/a", True),
    ("**/logs", "deeply/nested/logs/x", True),
    ("**/logs", "logs/x", True),
    ("**/logs", "mylogs/x", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("docs/**", "docs/a/b/c", True),
    ("/infra/*/Pulumi.dev.yaml", "infra/network/Pulumi.dev.yaml", True),
    ("/infra/*/Pulumi.dev.yaml", "infra/a/b/Pulumi.dev.yaml", False),
    ("?.txt", "a.txt", True),
    ("?.txt", "ab.txt", False),
    # a file or directory pattern without a trailing slash covers what is below it
    ("/apps/github", "apps/github", True),
    ("/apps/github", "apps/github/x.rb", True),
    ("/apps/github", "apps/githubber/x.rb", False),
]


@pytest.mark.parametrize(("pattern", "path", "matches"), MATCHING)
def test_pattern_matching(pattern: str, path: str, matches: bool) -> None:
    assert bool(co.compile_pattern(pattern).match(path)) is matches


GITHUB_EXAMPLE = """\
# This is a comment.
# Each line is a file pattern followed by one or more owners.

*       @global-owner1 @global-owner2
*.js    @js-owner #This is an inline comment.
*.go docs@example.com
*.txt @octo-org/octocats
/build/logs/ @doctocat
docs/*  docs@example.com
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/ @octocat
/apps/github
"""

# (path, owners, deciding line): the last matching rule wins
OWNERSHIP = [
    ("README.md", ["@global-owner1", "@global-owner2"], 4),
    ("src/app.js", ["@js-owner"], 5),
    ("main.go", ["docs@example.com"], 6),
    ("notes.txt", ["@octo-org/octocats"], 7),
    ("build/logs/out.log", ["@octocat"], 13),  # **/logs comes after /build/logs/
    ("docs/getting-started.md", ["@doctocat"], 11),  # /docs/ comes after docs/*
    ("docs/build-app/troubleshooting.md", ["@doctocat"], 11),
    ("scripts/deploy.sh", ["@doctocat", "@octocat"], 12),
    ("scripts/logs/a.js", ["@octocat"], 13),
    ("apps/web/x.rb", ["@octocat"], 14),
    ("src/apps/x.js", ["@octocat"], 10),  # apps/ comes after *.js
    ("apps/github/x.rb", [], 15),  # a rule without owners un-owns
]


@pytest.mark.parametrize(("path", "owners", "line"), OWNERSHIP)
def test_github_example_last_match_wins(path: str, owners: list[str], line: int) -> None:
    parsed = co.parse(GITHUB_EXAMPLE)
    assert parsed.problems == []
    found = parsed.ownership(path)
    assert found.owners == owners
    assert found.rule is not None and found.rule.line == line


# (CODEOWNERS text, path, owners): GitHub's documented examples and gitignore's pattern-format rules,
# each asserted through the owners a path gets (a file whose rules do not match leaves the path unowned)
OWNERS_OF = [
    # GitHub's example file
    ("*.js @js", "src/web/app.js", ["@js"]),
    ("*.js @js", "app.jsx", []),
    ("*.go docs@example.com", "cmd/main.go", ["docs@example.com"]),
    ("/build/logs/ @doctocat", "build/logs/a/b.log", ["@doctocat"]),
    ("/build/logs/ @doctocat", "src/build/logs/a.log", []),
    ("docs/* docs@example.com", "docs/getting-started.md", ["docs@example.com"]),
    ("docs/* docs@example.com", "docs/build-app/troubleshooting.md", []),
    ("apps/ @octocat", "apps/x.js", ["@octocat"]),
    ("apps/ @octocat", "deep/in/apps/x.js", ["@octocat"]),
    ("/docs/ @doctocat", "docs/a/b/c.md", ["@doctocat"]),
    ("/docs/ @doctocat", "src/docs/a.md", []),
    ("/scripts/ @doctocat @octocat", "scripts/ci/run.sh", ["@doctocat", "@octocat"]),
    ("**/logs @octocat", "deeply/nested/logs/x.log", ["@octocat"]),
    ("**/logs @octocat", "logs/x.log", ["@octocat"]),
    ("* @all\n*.js @js", "a/b.js", ["@js"]),  # the last match wins
    ("*.js @js\n* @all", "a/b.js", ["@all"]),
    ("* @all\n/apps/github", "apps/github/x.rb", []),  # an owner-less rule un-owns
    ("* @all\n/apps/github", "apps/other.rb", ["@all"]),
    # gitignore: a leading slash anchors at the root
    ("/a.txt @o", "a.txt", ["@o"]),
    ("/a.txt @o", "sub/a.txt", []),
    ("a.txt @o", "sub/deep/a.txt", ["@o"]),
    # a slash inside anchors too
    ("src/a.txt @o", "x/src/a.txt", []),
    # a trailing slash means a directory, not a file of that name
    ("/out/ @o", "out", []),
    ("/out/ @o", "out/x", ["@o"]),
    # rooted single star: direct children only
    ("/docs/* @o", "docs/a.md", ["@o"]),
    ("/docs/* @o", "docs/a/b.md", []),
    # "**/" leads: any depth, including the root
    ("**/foo @o", "foo", ["@o"]),
    ("**/foo @o", "a/b/foo/c", ["@o"]),
    ("**/foo/bar @o", "x/foo/bar", ["@o"]),
    ("**/foo/bar @o", "x/foo/baz", []),
    # "/**" trails: everything inside
    ("abc/** @o", "abc/x", ["@o"]),
    ("abc/** @o", "abc/x/y/z", ["@o"]),
    ("abc/** @o", "abcd/x", []),
    ("dir/**/ @o", "dir/x.md", ["@o"]),
    ("dir/**/ @o", "dir/a/b/x.md", ["@o"]),
    ("dir/**/ @o", "other/dir/x.md", []),
    # "a/**/b": zero or more directories between
    ("a/**/b @o", "a/b", ["@o"]),
    ("a/**/b @o", "a/x/b", ["@o"]),
    ("a/**/b @o", "a/x/y/b/c.txt", ["@o"]),
    ("a/**/b @o", "a/xb", []),
]


@pytest.mark.parametrize(("text", "path", "owners"), OWNERS_OF)
def test_owners_follow_github_and_gitignore_rules(text: str, path: str, owners: list[str]) -> None:
    parsed = co.parse(text + "\n")
    assert parsed.problems == []
    assert parsed.owners(path) == owners


def test_no_rule_means_unowned() -> None:
    parsed = co.parse("/infra/ @acme/platform\n")
    assert parsed.owners("README.md") == [] and parsed.match("README.md") is None


def test_invalid_lines_are_reported_with_line_numbers_and_skipped() -> None:
    text = "\n".join(
        [
            "*.py @acme/platform",  # 1
            "!secret.py @acme/security",  # 2 negation: unsupported
            "[ab].py @acme/security",  # 3 ranges: unsupported
            "*.py notanowner",  # 4 bad owner
            "*.py @bad_login!",  # 5 bad owner
            "\\#weird.py @acme/security",  # 6 escaped '#': a pattern, not a comment
            "  # indented comment",  # 7
            "",  # 8
            "/tools/ @acme/platform # trailing comment @ignored",  # 9
        ]
    )
    parsed = co.parse(text, source="CODEOWNERS")
    assert [p.line for p in parsed.problems] == [2, 3, 4, 5]
    assert "negation" in parsed.problems[0].message and "ranges" in parsed.problems[1].message
    assert "notanowner" in parsed.problems[2].message
    assert [r.line for r in parsed.rules] == [1, 6, 9]
    assert parsed.owners("secret.py") == ["@acme/platform"]  # the skipped line changed nothing
    assert parsed.owners("#weird.py") == ["@acme/security"]
    assert parsed.owners("tools/x") == ["@acme/platform"]


@pytest.mark.parametrize(
    ("owner", "kind"),
    [
        ("@alice", "user"),
        ("@acme/platform", "team"),
        ("@acme/sre_oncall.eu", "team"),
        ("docs@example.com", "email"),
        ("alice", None),
        ("@-alice", None),
        ("@acme/", None),
        ("@a--b", None),
    ],
)
def test_owner_kinds(owner: str, kind: str | None) -> None:
    assert co.owner_kind(owner) == kind


@pytest.mark.parametrize(
    ("present", "chosen"),
    [
        ({".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"}, ".github/CODEOWNERS"),
        ({"CODEOWNERS", "docs/CODEOWNERS"}, "CODEOWNERS"),
        ({"docs/CODEOWNERS"}, "docs/CODEOWNERS"),
        (set(), None),
    ],
)
def test_location_first_found_wins(present: set[str], chosen: str | None) -> None:
    files = {p: f"* @owner-of-{p.replace('/', '-').replace('.', '')}\n".encode() for p in present}
    found = co.find(files.get)
    if chosen is None:
        assert found is None
    else:
        assert found is not None and found.source == chosen
        assert found.owners("x") == [f"@owner-of-{chosen.replace('/', '-').replace('.', '')}"]


@pytest.mark.parametrize(
    ("path", "owners"),
    [
        ("infra/network/__main__.py", ["@acme/platform"]),
        ("infra/network/Pulumi.dev.yaml", []),  # dev settings: policy and risk decide
        ("infra/network/Pulumi.prod.yaml", ["@acme/platform"]),
        ("infra/identity/roles.py", ["@acme/platform", "@acme/security"]),
        ("policy-pack/network/gb_net_001.rego", ["@acme/security"]),
        ("registry/agents.yaml", ["@acme/security"]),
        (".glassbox/decisions/2026/11/x.json", []),
        ("CODEOWNERS", ["@acme/security"]),
        (".github/CODEOWNERS", ["@acme/security"]),
        ("README.md", []),
    ],
)
def test_repository_codeowners(path: str, owners: list[str]) -> None:
    parsed = co.parse((REPO_ROOT / ".github" / "CODEOWNERS").read_text(encoding="utf-8"))
    assert parsed.problems == []
    assert parsed.owners(path) == owners
