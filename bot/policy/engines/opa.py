"""The ``opa`` binary as an engine (``GLASSBOX_REGO_ENGINE=opa-binary``: ``opa eval --format json``), for runners
that install OPA (the check workflow's ``open-policy-agent/setup-opa``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from bot.policy.engines.input import prepare_input
from bot.policy.engines.results import Evaluation, fail, interpret
from bot.policy.pack import ROOT_PACKAGE, PolicyPack


class OpaEngine:
    """``opa eval --format json`` over the pack's policy modules; one process per evaluation."""

    def __init__(self, pack: PolicyPack, *, binary: str | None = None, timeout: float = 120.0) -> None:
        found = binary or shutil.which("opa")
        if not found:
            raise fail("the opa binary is not on PATH")
        self._binary = found
        self._pack = pack
        self._timeout = timeout

    @property
    def name(self) -> str:
        return "opa-binary"

    @property
    def pack(self) -> PolicyPack:
        return self._pack

    def evaluate_raw(self, input: Mapping[str, Any]) -> Any:
        document = prepare_input(input)
        args = [self._binary, "eval", "--format", "json", "--stdin-input"]
        for module in self._pack.policy_modules:
            args += ["--data", str(self._pack.root / module.path)]
        args.append(f"data.{ROOT_PACKAGE}")
        try:
            proc = subprocess.run(
                args,
                input=json.dumps(document),
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise fail(f"opa eval could not run: {exc}") from None
        try:
            answer = json.loads(proc.stdout) if proc.stdout.strip() else None
        except json.JSONDecodeError:
            raise fail(f"opa eval wrote non-JSON output (exit {proc.returncode})") from None
        if proc.returncode != 0 or not isinstance(answer, dict) or answer.get("errors"):
            errors = answer.get("errors") if isinstance(answer, dict) else None
            detail = json.dumps(errors)[:500] if errors else proc.stderr.strip()[:500]
            raise fail(f"opa eval failed (exit {proc.returncode}): {detail}")
        try:
            return answer["result"][0]["expressions"][0]["value"]
        except (KeyError, IndexError, TypeError):
            raise fail(f"data.{ROOT_PACKAGE} is undefined") from None

    def evaluate(self, input: Mapping[str, Any]) -> Evaluation:
        return interpret(self.evaluate_raw(input), self._pack, self.name)


def opa_available() -> bool:
    return shutil.which("opa") is not None
