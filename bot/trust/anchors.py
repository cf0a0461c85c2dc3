"""Trusted anchors: what a change is judged against comes from the BASE commit's tree, never from the change.

A tree is exported file by file (symlinks never followed), digested over (path, blob, mode) so equal trees
give equal digests, and the registry is read as committed there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import git

from bot.records import digest
from bot.registry import Registry, load_registry
from bot.trust.conventions import POLICY_PACK_DIR, REGISTRY_DIR


def export_tree(commit: git.Commit, prefix: str, dest: Path) -> Path:
    """Write the files under ``prefix`` at ``commit`` into ``dest/prefix``; return that directory."""
    target = dest / prefix
    target.mkdir(parents=True, exist_ok=True)
    try:
        tree = commit.tree / prefix
    except KeyError:
        return target
    for blob in tree.traverse():
        if not isinstance(blob, git.Blob) or blob.mode == 0o120000:
            continue  # symlinks in a trust anchor are never followed
        path = dest / blob.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob.data_stream.read())
    return target


def tree_digest(commit: git.Commit, prefix: str) -> str:
    """Digest over (path, blob sha) of every file under ``prefix``: equal trees give equal digests."""
    try:
        tree = commit.tree / prefix
    except KeyError:
        return digest([])
    blobs = sorted((str(b.path), b.hexsha, int(b.mode)) for b in tree.traverse() if isinstance(b, git.Blob))
    return digest([{"path": p, "blob": h, "mode": m} for p, h, m in blobs])


def policy_pack_digest(commit: git.Commit) -> str:
    return tree_digest(commit, POLICY_PACK_DIR)


def registry_at(commit: git.Commit) -> Registry:
    """The registry as committed at ``commit``."""
    with tempfile.TemporaryDirectory(prefix="glassbox-registry-") as scratch:
        return load_registry(export_tree(commit, REGISTRY_DIR, Path(scratch)))
