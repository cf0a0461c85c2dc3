"""The shape the in-process engines that answer every area with one query share (OPA, regorus)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.errors import EngineError
from bot.policy.engines.input import check_shape, normalise_input, prepare_input
from bot.policy.engines.results import BINDING, Evaluation, PackAnswers, fail, interpret, restrict
from bot.policy.pack import ROOT_PACKAGE


class OneQueryEngine(PackAnswers):
    """What the in-process engines that answer every area with one query share: evaluating an input, a prepared
    document or one reference through ``_ask``."""

    @property
    def name(self) -> str:
        raise NotImplementedError

    def area_query(self) -> str:
        """``x := {"network": data.glassbox.network, ...}``: every area in one query."""
        fields = ", ".join(f'"{a.split(".", 1)[1]}": data.{a}' for a in self.areas)
        return f"{BINDING} := {{{fields}}}"

    def _ask(self, query: str, document: Mapping[str, Any]) -> Any:
        """The value bound to ``BINDING`` by ``query`` over ``document``; None when undefined."""
        raise NotImplementedError

    def _raw(self, document: dict[str, Any]) -> dict[str, Any]:
        value = self._ask(self.area_query(), document)
        if not isinstance(value, Mapping):
            raise fail(f"data.{ROOT_PACKAGE} is undefined or not an object")
        return restrict(value, self.packages)

    def evaluate_raw(self, input: Mapping[str, Any]) -> Any:
        """``data.glassbox`` for this input, restricted to the rule and risk packages."""
        return self._raw(prepare_input(input))

    def evaluate(self, input: Mapping[str, Any]) -> Evaluation:
        return interpret(self.evaluate_raw(input), self._pack, self.name)

    def evaluate_prepared(self, document: dict[str, Any]) -> Evaluation:
        """Evaluate a document exactly as given (normalised, with an ``index``); see RegopyEngine."""
        check_shape(document)
        if not isinstance(document.get("index"), dict):
            raise fail("prepared policy input without an index")
        return interpret(self._raw(document), self._pack, self.name)

    def query(self, ref: str, input: Mapping[str, Any] | None = None) -> Any:
        """Evaluate one reference (e.g. ``data.glassbox.network.gb_net_001``)."""
        try:
            document = prepare_input(input or {})
        except EngineError:
            document = normalise_input(input or {})
        value = self._ask(f"{BINDING} := {ref}", document)
        if value is None:
            raise fail(f"{ref} is undefined")
        return value
