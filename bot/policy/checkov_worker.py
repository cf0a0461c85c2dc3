"""glassbox's checkov worker: checkov imported once, then scans served over JSON lines.

This script runs under the checkov tool environment's python (``.tools/checkov/bin/python``), never in
glassbox's process: current checkov pins ``packaging<24`` and current pulumi-aws needs ``packaging>=24``.
The ``bot`` package is not installed there, so this file uses the standard library and checkov only.

Protocol: one JSON object per line on stdin, one JSON object per line on stdout, in order.

    {"op": "ping", "id": 1}                                  -> {"id": 1, "ok": true, "pid": 123}
    {"op": "version", "id": 2}                               -> {"id": 2, "ok": true, "checkov_version": ...}
    {"op": "scan_plan", "id": 3, "plan": {...},
     "skip_checks": ["CKV_AWS_144"]}                         -> {"id": 3, "ok": true, "result": {...}}
    {"op": "scan_files", "id": 4, "root": "/abs/dir",
     "files": ["main.tf", "k8s/pod.yaml"], "skip_checks": []} -> {"id": 4, "ok": true, "result": {...}}
    {"op": "stats", "id": 5}                                 -> memo cache statistics
    {"op": "shutdown", "id": 6}                              -> {"id": 6, "ok": true}, then exit 0

A request that fails gets ``{"id": n, "error": "..."}`` and the worker carries on. Only protocol lines
reach the real stdout: file descriptor 1 is pointed at stderr before checkov is imported, so checkov's
logging, stray prints and any child process write to stderr.

Hardening, all installed once at start-up:
- no network: socket connects and name look-ups are refused in-process (checkov may try an update check or
  a platform call; offline environment variables are set by the parent too, this is the backstop);
- checkov's class-level cloudsplaining caches are keyed by file path + resource name and never cleared;
  in a long-lived process a later scan could reuse an earlier scan's policy document, so they are
  cleared before every request;
- IAM memoization (disable with ``--no-iam-memo``): cloudsplaining recomputes, for every policy statement,
  which of the (often tens of thousands, after wildcard expansion) actions are resource-restrictable and
  which match an access level, going through a policy_sentry LRU cache of 1,024 entries that a ``"*"``
  expansion thrashes. Those functions are pure functions of the action list and the bundled IAM database,
  so their results are memoized by the exact action list; identical policy documents are also parsed once
  (keyed by their canonical JSON).
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import inspect
import json
import logging
import os
import re
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

PROTOCOL_VERSION = 1
_CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_[0-9]+$")
# Entries per cache. A wildcard expansion is ~17,000 actions, so keep this modest (memory).
_MEMO_SIZE = 512
# Raw-IaC frameworks scan_files offers; each runner picks the files it understands.
_FILE_FRAMEWORKS = ("terraform", "cloudformation", "kubernetes", "dockerfile")

log = logging.getLogger("glassbox.checkov_worker")


# --------------------------------------------------------------------------------------------------
# process set-up: stdout, logging, network


def _claim_stdout() -> TextIO:
    """Keep the real stdout for the protocol alone; everything else written to fd 1 lands on stderr."""
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(proto_fd, "w", encoding="utf-8", buffering=1)


class NetworkBlocked(OSError):
    pass


# Attempts refused so far; reported by the stats op so tests can prove checkov never tried.
network_refusals: list[str] = []


def _forbid_network() -> None:
    """Refuse every outbound connection and name look-up made from this process (local sockets stay)."""

    def _refuse(what: str) -> NetworkBlocked:
        network_refusals.append(what)
        log.warning("glassbox checkov worker refused network access: %s", what)
        return NetworkBlocked(f"network access is disabled in the glassbox checkov worker ({what})")

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        if self.family == getattr(socket, "AF_UNIX", None):
            return real_connect(self, address)
        raise _refuse(f"connect {address!r}")

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family == getattr(socket, "AF_UNIX", None):
            return real_connect_ex(self, address)
        raise _refuse(f"connect {address!r}")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(f"resolve {host!r}")

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(f"connect {address!r}")

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo
    socket.create_connection = create_connection


def _configure_logging() -> None:
    # checkov configures the root logger at import; pin it to warnings on stderr so debug records (some
    # of which json.dumps whole findings) are neither formatted nor kept.
    level = os.environ.get("LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(stream=sys.stderr, level=level, force=True)


# --------------------------------------------------------------------------------------------------
# IAM memoization


class Lru:
    """A small bounded mapping with hit counts (``functools.lru_cache`` cannot key on part of ``self``)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.data: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key in self.data:
            self.hits += 1
            self.data.move_to_end(key)
            return self.data[key]
        self.misses += 1
        value = compute()  # may raise: then nothing is cached, as without the memo
        self.data[key] = value
        if len(self.data) > self.maxsize:
            self.data.popitem(last=False)
        return value

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "size": len(self.data)}


def _freeze(value: Any) -> Any:
    """Lists become tuples (cached, never handed out); anything else is kept as is."""
    return tuple(value) if isinstance(value, list) else value


def _thaw(value: Any) -> Any:
    """A fresh list for every caller: cloudsplaining sorts and extends results in place."""
    return list(value) if isinstance(value, tuple) else value


def _memo_by_actions(fn: Callable[..., Any], cache: Lru) -> Callable[..., Any]:
    """Memoize ``fn(actions_list, *rest)`` on the exact action list and the other arguments."""

    @functools.wraps(fn)
    def wrapper(actions_list: Any, *rest: Any, **kwargs: Any) -> Any:
        if kwargs or not isinstance(actions_list, list | tuple):
            return fn(actions_list, *rest, **kwargs)  # not how cloudsplaining calls it: no memo
        key = (tuple(actions_list), *rest)
        try:
            hash(key)
        except TypeError:
            return fn(actions_list, *rest)
        return _thaw(cache.get(key, lambda: _freeze(fn(list(actions_list), *rest))))

    return wrapper


class _QuietJson:
    """Stands in for ``json`` in a checkov module that formats whole findings into a debug message.

    checkov's cloudsplaining scanner builds ``json.dumps(violations, indent=2)`` (tens of thousands of
    actions for a wildcard policy) inside an f-string passed to ``logging.debug``: the work is done even
    when debug logging is off. The text is never used then, so skip it.
    """

    def __init__(self, real: Any) -> None:
        self._real = real

    def dumps(self, obj: Any, *args: Any, **kwargs: Any) -> str:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            return str(self._real.dumps(obj, *args, **kwargs))
        return "(omitted: debug logging is off)"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class IamMemo:
    """The installed caches, kept so the ``stats`` op can report their hit rates."""

    def __init__(self, maxsize: int) -> None:
        self.caches = {
            name: Lru(maxsize)
            for name in (
                "remove_wildcard_only_actions",
                "remove_actions_not_matching_access_level",
                "determine_actions_to_expand",
                "not_action_effective_actions",
                "policy_document",
            )
        }

    def stats(self) -> dict[str, Any]:
        return {name: cache.stats() for name, cache in self.caches.items()}


def install_iam_memo(maxsize: int = _MEMO_SIZE) -> IamMemo:
    """Memoize cloudsplaining's hot, pure helpers where cloudsplaining looks them up. Call once.

    Where the time went (cProfile, 250 wildcard policies, checkov 3.3.30, no memo: 9.4 s): building each
    statement's restrictable-action list (``remove_wildcard_only_actions``: one policy_sentry look-up per
    expanded action, through an LRU of 1,024 that a ``"*"`` expansion of ~17,000 actions thrashes) and the
    per-check access-level filters (``remove_actions_not_matching_access_level``). Both are pure functions
    of the action list and policy_sentry's bundled database, so they are memoized on the exact list.
    NotAction statements compare every AWS action against the excluded list (quadratic): memoized on
    (NotAction, Resource, Effect). Identical documents are parsed once, keyed by their canonical JSON.
    """
    # By module name: cloudsplaining is not installed in glassbox's environment, where mypy runs.
    cs_policy_document: Any = importlib.import_module("cloudsplaining.scan.policy_document")
    cs_statement: Any = importlib.import_module("cloudsplaining.scan.statement_detail")
    cs_utils: Any = importlib.import_module("cloudsplaining.shared.utils")
    memo = IamMemo(maxsize)
    caches = memo.caches

    restrictable = _memo_by_actions(cs_utils.remove_wildcard_only_actions, caches["remove_wildcard_only_actions"])
    by_level = _memo_by_actions(
        cs_statement.remove_actions_not_matching_access_level, caches["remove_actions_not_matching_access_level"]
    )
    expand = _memo_by_actions(cs_statement.determine_actions_to_expand, caches["determine_actions_to_expand"])
    # Names are bound at import in the using modules, so patch them there.
    cs_statement.remove_wildcard_only_actions = restrictable
    cs_statement.remove_actions_not_matching_access_level = by_level
    cs_statement.determine_actions_to_expand = expand
    cs_utils.remove_wildcard_only_actions = restrictable
    cs_utils.remove_actions_not_matching_access_level = by_level

    statement_class = cs_statement.StatementDetail
    real_not_action = statement_class._not_action_effective_actions

    def not_action_effective_actions(self: Any) -> Any:
        # Everything the original reads from self: not_action, resources, effect (and what derives from them).
        key = (tuple(self.not_action), tuple(self.resources), self.effect, self.has_resource_wildcard)
        try:
            hash(key)
        except TypeError:
            return real_not_action(self)
        return _thaw(caches["not_action_effective_actions"].get(key, lambda: _freeze(real_not_action(self))))

    statement_class._not_action_effective_actions = not_action_effective_actions

    # Identical documents share one parsed PolicyDocument. Safe: a PolicyDocument and its statements are
    # not mutated after construction; their analyses are recomputed on every access.
    real_document = cs_policy_document.PolicyDocument

    def policy_document(policy: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return real_document(policy, *args, **kwargs)
        try:
            key = json.dumps(policy, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            return real_document(policy)
        return caches["policy_document"].get(key, lambda: real_document(policy))

    from checkov.terraform.checks.data import base_cloudsplaining_data_iam_check as tf_data
    from checkov.terraform.checks.resource import base_cloudsplaining_resource_iam_check as tf_resource
    from checkov.terraform.checks.utils import base_cloudsplaining_iam_scanner as tf_scanner

    for module in (tf_resource, tf_data):
        if getattr(module, "PolicyDocument", None) is real_document:
            module.PolicyDocument = policy_document
    # Only where json serves nothing but that debug message (checked, in case checkov changes).
    if tf_scanner.json is json and inspect.getsource(tf_scanner).count("json.") == 1:
        tf_scanner.json = _QuietJson(json)
    return memo


def _clear_checkov_iam_caches() -> None:
    """Drop checkov's per-path policy caches so a scan never sees an earlier scan's documents."""
    from checkov.terraform.checks.utils.base_cloudsplaining_iam_scanner import (
        BaseTerraformCloudsplainingIAMScanner,
    )

    BaseTerraformCloudsplainingIAMScanner.policy_document_cache.clear()
    try:
        from checkov.cloudformation.checks.resource.BaseCloudsplainingIAMCheck import BaseCloudsplainingIAMCheck
    except ImportError:  # pragma: no cover - layout differs in other checkov versions
        return
    BaseCloudsplainingIAMCheck.policy_document_cache.clear()


# --------------------------------------------------------------------------------------------------
# scanning


class RequestError(Exception):
    """A bad request: reported to the caller, the worker carries on."""


def _skip_checks(request: dict[str, Any]) -> list[str]:
    skips = request.get("skip_checks", [])
    if not isinstance(skips, list) or not all(isinstance(s, str) and _CHECK_ID.match(s) for s in skips):
        # Only plain check ids: checkov would read "HIGH" as a severity threshold and "X:y" as a regex.
        raise RequestError("skip_checks must be a list of check ids like CKV_AWS_20")
    return skips


def _managed_addresses(module: Any, where: str, seen: set[str]) -> None:
    """Collect a module's managed-resource addresses, refusing resources checkov would silently ignore."""
    if not isinstance(module, dict):
        raise RequestError(f"{where} must be an object")
    resources = module.get("resources", [])
    if not isinstance(resources, list):
        raise RequestError(f"{where}.resources must be a list")
    for i, res in enumerate(resources):
        if not isinstance(res, dict):
            raise RequestError(f"{where}.resources[{i}] must be an object")
        for key in ("address", "type", "name", "mode"):
            if not isinstance(res.get(key), str) or not res[key]:
                # Without an address checkov logs a warning and skips the resource: a silent pass.
                raise RequestError(f"{where}.resources[{i}] has no {key!r}; checkov would skip it")
        if res["mode"] == "data":
            continue  # data sources are read, not changed; checkov does not count them as resources
        if res["mode"] != "managed":
            raise RequestError(f"{where}.resources[{i}] has mode {res['mode']!r}; expected managed or data")
        if res["address"] in seen:
            raise RequestError(f"{where}.resources[{i}]: address {res['address']!r} appears twice")
        seen.add(res["address"])
    children = module.get("child_modules", [])
    if not isinstance(children, list):
        raise RequestError(f"{where}.child_modules must be a list")
    for j, child in enumerate(children):
        _managed_addresses(child, f"{where}.child_modules[{j}]", seen)


def _validate_plan(plan: Any) -> int:
    if not isinstance(plan, dict):
        raise RequestError("plan must be a JSON object (a Terraform plan)")
    if not isinstance(plan.get("terraform_version"), str):
        # checkov does not recognise a plan without it and reports nothing at all.
        raise RequestError("plan has no 'terraform_version'; checkov would not recognise it as a plan")
    planned = plan.get("planned_values")
    if not isinstance(planned, dict) or "root_module" not in planned:
        raise RequestError("plan has no 'planned_values.root_module'")
    addresses: set[str] = set()
    _managed_addresses(planned["root_module"], "planned_values.root_module", addresses)
    return len(addresses)


def _relative(path: str | None, root: str) -> str:
    if not path:
        return ""
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return path


def _collect(reports: Any, root: str, skipped: list[str]) -> dict[str, Any]:
    from checkov.version import version

    if not isinstance(reports, list):
        reports = [reports]
    findings: list[dict[str, Any]] = []
    parsing_errors: list[str] = []
    resources = 0
    for report in reports:
        parsing_errors.extend(_relative(p, root) for p in report.parsing_errors)
        resources += len(report.resources)
        for status, records in (("failed", report.failed_checks), ("passed", report.passed_checks)):
            for rec in records:
                file = _relative(rec.file_abs_path, root) or rec.file_path.lstrip("/")
                resource = str(rec.resource_address or rec.resource or "")
                # The dockerfile runner names resources by absolute path: keep reports repo-relative.
                if rec.file_abs_path and resource.startswith(rec.file_abs_path):
                    resource = file + resource[len(rec.file_abs_path) :]
                findings.append(
                    {
                        "check_id": rec.check_id,
                        "name": rec.check_name,
                        "status": status,
                        "resource_address": resource,
                        "file": file,
                        "guideline": rec.guideline,
                        "framework": str(report.check_type),
                    }
                )
    findings.sort(key=lambda f: (f["file"], f["resource_address"], f["check_id"], f["status"]))
    return {
        "version": version,
        "findings": findings,
        "passed_count": sum(1 for f in findings if f["status"] == "passed"),
        "failed_count": sum(1 for f in findings if f["status"] == "failed"),
        "resource_count": resources,
        "skipped_checks": sorted(skipped),
        "parsing_errors": sorted(parsing_errors),
    }


def scan_plan(request: dict[str, Any]) -> dict[str, Any]:
    from checkov.runner_filter import RunnerFilter
    from checkov.terraform.plan_runner import Runner

    plan = request.get("plan")
    expected = _validate_plan(plan)
    skips = _skip_checks(request)
    # A fresh directory per request: checkov keys caches by file path.
    with tempfile.TemporaryDirectory(prefix="glassbox-checkov-") as tmp:
        root = str(Path(tmp).resolve())
        path = os.path.join(root, "plan.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(plan, fh)
        report = Runner().run(
            root_folder=None,
            files=[path],
            runner_filter=RunnerFilter(framework=["terraform_plan"], skip_checks=skips),
        )
        result = _collect(report, root, skips)
    if result["parsing_errors"]:
        raise RequestError(f"checkov could not parse the plan: {', '.join(result['parsing_errors'])}")
    if result["resource_count"] != expected:
        # Every managed resource must have been seen: anything less is a silent gap in the scan.
        raise RequestError(f"checkov saw {result['resource_count']} of the plan's {expected} managed resources")
    return result


def scan_files(request: dict[str, Any]) -> dict[str, Any]:
    from checkov.cloudformation.runner import Runner as CloudFormationRunner
    from checkov.dockerfile.runner import Runner as DockerfileRunner
    from checkov.kubernetes.runner import Runner as KubernetesRunner
    from checkov.runner_filter import RunnerFilter
    from checkov.terraform.runner import Runner as TerraformRunner

    root_arg = request.get("root")
    files_arg = request.get("files")
    if not isinstance(root_arg, str) or not os.path.isabs(root_arg) or not os.path.isdir(root_arg):
        raise RequestError("root must be an absolute path to a directory")
    if not isinstance(files_arg, list) or not files_arg or not all(isinstance(f, str) for f in files_arg):
        raise RequestError("files must be a non-empty list of paths")
    root = str(Path(root_arg).resolve())
    files: list[str] = []
    for name in files_arg:
        path = Path(root, name).resolve()
        if not path.is_relative_to(root):
            raise RequestError(f"{name!r} is outside root")
        if not path.is_file():
            raise RequestError(f"{name!r} is not a file under root")
        files.append(str(path))
    skips = _skip_checks(request)
    runners = {
        "terraform": TerraformRunner,
        "cloudformation": CloudFormationRunner,
        "kubernetes": KubernetesRunner,
        "dockerfile": DockerfileRunner,
    }
    reports: list[Any] = []
    for framework in _FILE_FRAMEWORKS:
        # Each runner keeps only the files it recognises (by suffix or content).
        out = runners[framework]().run(
            root_folder=None,
            files=files,
            runner_filter=RunnerFilter(framework=[framework], skip_checks=skips),
        )
        reports.extend(out if isinstance(out, list) else [out])
    result = _collect(reports, root, skips)
    if result["parsing_errors"]:
        raise RequestError(f"checkov could not parse: {', '.join(result['parsing_errors'])}")
    return result


def _connections(solver: Any, out: list[list[list[str]]]) -> bool:
    """Collect every connection condition of a graph check's solver tree as [resource types, connected types];
    False when the tree holds a solver whose reach across the graph this walk cannot tell."""
    from checkov.common.checks_infra.solvers.attribute_solvers.base_attribute_solver import BaseAttributeSolver
    from checkov.common.checks_infra.solvers.complex_solvers.base_complex_solver import BaseComplexSolver
    from checkov.common.checks_infra.solvers.connections_solvers.base_connection_solver import BaseConnectionSolver
    from checkov.common.checks_infra.solvers.connections_solvers.complex_connection_solver import (
        ComplexConnectionSolver,
    )
    from checkov.common.checks_infra.solvers.filter_solvers.base_filter_solver import BaseFilterSolver

    if isinstance(solver, BaseComplexSolver | ComplexConnectionSolver):
        return all([_connections(sub, out) for sub in solver.solvers or []])
    if isinstance(solver, BaseConnectionSolver):
        out.append([sorted(solver.resource_types or []), sorted(solver.connected_resources_types or [])])
        return True
    return isinstance(solver, BaseAttributeSolver | BaseFilterSolver)


def terraform_checks() -> list[dict[str, Any]]:
    """Every Terraform check checkov has (resource checks and graph checks) with its resource types.

    Lets glassbox prove its severity map covers what checkov can report, and notice new checks after an
    upgrade of the tool environment. A graph check also lists its connection conditions (``connections``:
    [resource types, connected types] each), and ``opaque`` when its solver tree holds a solver of a kind
    whose reach is unknown: how far across the graph one resource's result may depend on others.
    """
    from checkov.common.checks_infra.registry import get_graph_checks_registry
    from checkov.terraform.checks.resource.registry import resource_registry

    found: dict[str, dict[str, Any]] = {}

    def entry_for(check: Any) -> dict[str, Any]:
        empty = {"resource_types": set(), "connections": [], "opaque": False}
        return found.setdefault(check.id, {"id": check.id, "name": check.name, **empty})

    for resource_type, checks in resource_registry.checks.items():
        for check in checks:
            entry_for(check)["resource_types"].add(resource_type)
    graph = get_graph_checks_registry("terraform")
    graph.load_checks()
    for check in graph.checks:
        entry = entry_for(check)
        entry["resource_types"].update(check.resource_types or [])
        entry["opaque"] = entry["opaque"] or not _connections(check.solver, entry["connections"])
    return [{**e, "resource_types": sorted(e["resource_types"])} for _, e in sorted(found.items())]


# --------------------------------------------------------------------------------------------------
# the loop


class Worker:
    def __init__(self, out: TextIO, iam_memo: bool) -> None:
        self.out = out
        self.memo = install_iam_memo() if iam_memo else None
        self.stopping = False

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}
        if op == "version":
            from checkov.version import version

            return {
                "ok": True,
                "checkov_version": version,
                "python": sys.version.split()[0],
                "protocol": PROTOCOL_VERSION,
                "iam_memo": self.memo is not None,
                "pid": os.getpid(),
            }
        if op == "shutdown":
            self.stopping = True
            return {"ok": True}
        if op == "stats":
            return {
                "ok": True,
                "iam_memo": self.memo.stats() if self.memo else None,
                "network_refusals": list(network_refusals),
            }
        if op == "checks":
            return {"ok": True, "checks": terraform_checks()}
        if op in ("scan_plan", "scan_files"):
            _clear_checkov_iam_caches()
            started = time.perf_counter()
            result = scan_plan(request) if op == "scan_plan" else scan_files(request)
            result["seconds"] = round(time.perf_counter() - started, 4)
            return {"ok": True, "result": result}
        raise RequestError(f"unknown op {op!r}")

    def serve(self, stdin: TextIO) -> int:
        for line in stdin:
            if not line.strip():
                continue
            request_id: Any = None
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise RequestError("a request must be a JSON object")
                request_id = request.get("id")
                response = self.handle(request)
            except RequestError as exc:
                response = {"error": str(exc)}
            except json.JSONDecodeError as exc:
                response = {"error": f"request is not valid JSON: {exc}"}
            except Exception as exc:  # never die on a request: report it, log the traceback
                traceback.print_exc(file=sys.stderr)
                response = {"error": f"{type(exc).__name__}: {exc}"}
            response["id"] = request_id
            self.out.write(json.dumps(response, separators=(",", ":"), default=str) + "\n")
            self.out.flush()
            if self.stopping:
                break
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-iam-memo", action="store_true", help="do not memoize cloudsplaining's IAM analysis")
    args = parser.parse_args(argv)

    # Run as a script, Python puts this file's directory first on sys.path, where glassbox's own
    # checkov.py would shadow the checkov package. The parent passes -I; this covers direct runs.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]

    out = _claim_stdout()
    _forbid_network()
    _configure_logging()
    # Import checkov once, before the first request, so every scan is warm.
    from checkov.cloudformation import runner as _cfn  # noqa: F401
    from checkov.dockerfile import runner as _docker  # noqa: F401
    from checkov.kubernetes import runner as _k8s  # noqa: F401
    from checkov.terraform import plan_runner as _plan  # noqa: F401
    from checkov.terraform import runner as _tf  # noqa: F401

    worker = Worker(out, iam_memo=not args.no_iam_memo)
    return worker.serve(sys.stdin)


if __name__ == "__main__":
    sys.exit(main())
