"""GitHub REST v3 JSON shapes of the embedded forge, built from its state.

Each builder returns the fields GitHub's OpenAPI description marks required for that schema (the
conformance tests check this), with ``url`` fields built from the server's own base URL, because PyGithub
follows them.
"""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import dataclass
from typing import Any

from bot.forge.server.gitrepo import CommitInfo, DiffEntry, Person
from bot.forge.server.store import User

DOCS = "https://docs.github.com/rest"


def node_id(kind: str, ident: int | str) -> str:
    return base64.b64encode(f"{kind}:{ident}".encode()).decode("ascii")


def git_date(person: Person) -> str:
    return person.date.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Urls:
    """Where the server lives: ``web`` for html_url fields, ``api`` for every API url."""

    web: str

    @property
    def api(self) -> str:
        return f"{self.web}/api/v3"

    def repo(self, owner: str, name: str) -> str:
        return f"{self.api}/repos/{owner}/{name}"

    def repo_web(self, owner: str, name: str) -> str:
        return f"{self.web}/{owner}/{name}"


def error(message: str, doc: str = "") -> dict[str, Any]:
    return {"message": message, "documentation_url": f"{DOCS}{doc}"}


def user(u: User, urls: Urls) -> dict[str, Any]:
    api = f"{urls.api}/users/{u.login}"
    return {
        "login": u.login,
        "id": u.id,
        "node_id": node_id("User", u.id),
        "avatar_url": f"{urls.web}/avatars/{u.login}",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{urls.web}/{u.login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": "User",
        "site_admin": u.kind == "admin",
    }


def owner(login: str, urls: Urls, owner_id: int = 1) -> dict[str, Any]:
    data = user(User(owner_id, login, "org", login, ""), urls)
    data["type"] = "Organization"
    data["node_id"] = node_id("Organization", owner_id)
    return data


def app(u: User, urls: Urls, org: str, created_at: str) -> dict[str, Any]:
    """A service identity as the GitHub App it plays on GitHub (the ``integration`` schema)."""
    return {
        "id": u.id,
        "slug": u.login,
        "node_id": node_id("Integration", u.id),
        "client_id": f"Iv1.{u.id:016x}",
        "owner": owner(org, urls),
        "name": u.name,
        "description": None,
        "external_url": f"{urls.web}/{u.login}",
        "html_url": f"{urls.web}/apps/{u.login}",
        "created_at": created_at,
        "updated_at": created_at,
        "permissions": {"checks": "write", "statuses": "write", "contents": "read", "metadata": "read"},
        "events": [],
    }


def team(row: sqlite3.Row, urls: Urls, org: str) -> dict[str, Any]:
    """The ``team`` schema of a team row."""
    org_url = f"{urls.api}/orgs/{org}"
    return {
        "id": row["id"],
        "node_id": node_id("Team", row["id"]),
        "url": f"{org_url}/teams/{row['slug']}",
        "name": row["name"],
        "slug": row["slug"],
        "description": row["description"],
        "permission": "push",
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "html_url": f"{urls.web}/orgs/{org}/teams/{row['slug']}",
        "members_url": f"{org_url}/teams/{row['slug']}/members{{/member}}",
        "repositories_url": f"{org_url}/teams/{row['slug']}/repos",
        "parent": None,
        "type": "organization",
    }


def full_user(u: User, urls: Urls, created_at: str) -> dict[str, Any]:
    return {
        **user(u, urls),
        "name": u.name,
        "company": None,
        "blog": "",
        "location": None,
        "email": u.email,
        "hireable": None,
        "bio": None,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": created_at,
        "updated_at": created_at,
    }


_REPO_TEMPLATES = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
}


def repository(repo: sqlite3.Row, urls: Urls, open_issues: int, *, full: bool = False) -> dict[str, Any]:
    o, n = repo["owner"], repo["name"]
    api = urls.repo(o, n)
    web = urls.repo_web(o, n)
    data: dict[str, Any] = {
        "id": repo["id"],
        "node_id": node_id("Repository", repo["id"]),
        "name": n,
        "full_name": f"{o}/{n}",
        "owner": owner(o, urls),
        "private": True,
        "html_url": web,
        "description": None,
        "fork": False,
        "url": api,
        **{key: api + suffix for key, suffix in _REPO_TEMPLATES.items()},
        "clone_url": f"{web}.git",
        "git_url": f"{web}.git",
        "ssh_url": f"{web}.git",
        "svn_url": web,
        "mirror_url": None,
        "homepage": None,
        "language": None,
        "forks": 0,
        "forks_count": 0,
        "stargazers_count": 0,
        "watchers": 0,
        "watchers_count": 0,
        "size": 0,
        "default_branch": repo["default_branch"],
        "open_issues": open_issues,
        "open_issues_count": open_issues,
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_downloads": False,
        "has_discussions": False,
        "archived": False,
        "disabled": False,
        "visibility": "private",
        "license": None,
        "pushed_at": repo["pushed_at"],
        "created_at": repo["created_at"],
        "updated_at": repo["pushed_at"],
        "allow_squash_merge": True,
        "allow_merge_commit": True,
        "allow_rebase_merge": False,
    }
    if full:
        data["network_count"] = 0
        data["subscribers_count"] = 0
    return data


def git_person(person: Person) -> dict[str, Any]:
    return {"name": person.name, "email": person.email, "date": git_date(person)}


def git_commit(c: CommitInfo, urls: Urls, owner_: str, name: str, verification: dict[str, Any]) -> dict[str, Any]:
    """The ``git-commit`` schema; ``verification`` is the forge's verdict on the commit's signature."""
    api = urls.repo(owner_, name)
    return {
        "sha": c.sha,
        "node_id": node_id("Commit", c.sha),
        "url": f"{api}/git/commits/{c.sha}",
        "html_url": f"{urls.repo_web(owner_, name)}/commit/{c.sha}",
        "author": git_person(c.author),
        "committer": git_person(c.committer),
        "message": c.message,
        "tree": {"sha": c.tree, "url": f"{api}/git/trees/{c.tree}"},
        "parents": [
            {"sha": p, "url": f"{api}/git/commits/{p}", "html_url": f"{urls.repo_web(owner_, name)}/commit/{p}"}
            for p in c.parents
        ],
        "verification": verification,
    }


def commit(
    c: CommitInfo,
    urls: Urls,
    owner_: str,
    name: str,
    verification: dict[str, Any],
    author: User | None = None,
    committer: User | None = None,
) -> dict[str, Any]:
    """The ``commit`` schema (GET /commits/{ref}, branches, compare, a PR's commits).

    ``author`` and ``committer`` are the accounts whose email matches the git identities' (null otherwise).
    """
    api = urls.repo(owner_, name)
    web = urls.repo_web(owner_, name)
    return {
        "url": f"{api}/commits/{c.sha}",
        "sha": c.sha,
        "node_id": node_id("Commit", c.sha),
        "html_url": f"{web}/commit/{c.sha}",
        "comments_url": f"{api}/commits/{c.sha}/comments",
        "commit": {
            "url": f"{api}/git/commits/{c.sha}",
            "author": git_person(c.author),
            "committer": git_person(c.committer),
            "message": c.message,
            "comment_count": 0,
            "tree": {"sha": c.tree, "url": f"{api}/git/trees/{c.tree}"},
            "verification": verification,
        },
        "author": user(author, urls) if author else None,
        "committer": user(committer, urls) if committer else None,
        "parents": [{"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{web}/commit/{p}"} for p in c.parents],
    }


def git_ref(ref: str, sha: str, urls: Urls, owner_: str, name: str) -> dict[str, Any]:
    api = urls.repo(owner_, name)
    return {
        "ref": ref,
        "node_id": node_id("Ref", ref),
        "url": f"{api}/git/{ref}",
        "object": {"type": "commit", "sha": sha, "url": f"{api}/git/commits/{sha}"},
    }


def diff_entry(d: DiffEntry, urls: Urls, owner_: str, name: str, head: str) -> dict[str, Any]:
    api = urls.repo(owner_, name)
    web = urls.repo_web(owner_, name)
    sha = d.new_sha or d.old_sha or ""
    data: dict[str, Any] = {
        "sha": sha,
        "filename": d.path,
        "status": d.status,
        "additions": d.additions,
        "deletions": d.deletions,
        "changes": d.additions + d.deletions,
        "blob_url": f"{web}/blob/{head}/{d.path}",
        "raw_url": f"{web}/raw/{head}/{d.path}",
        "contents_url": f"{api}/contents/{d.path}?ref={head}",
    }
    if d.patch is not None:  # GitHub leaves it out for binary files
        data["patch"] = d.patch
    return data


def label(row: sqlite3.Row, urls: Urls, owner_: str, name: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "node_id": node_id("Label", row["id"]),
        "url": f"{urls.repo(owner_, name)}/labels/{row['name']}",
        "name": row["name"],
        "description": row["description"] or "",
        "color": row["color"],
        "default": False,
    }


def link(href: str) -> dict[str, str]:
    return {"href": href}
