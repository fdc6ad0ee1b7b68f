"""The report model: :class:`Issue` (one broken rule of one feature), :class:`Report`
(what :func:`~zones.validate.validate` returns) and ``_Collector``, which the rule
modules append issues to (each issue gets its rule's hint from
:data:`~zones.validate.rules.HINTS` unless the rule gives a more specific one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

from zones.validate.rules import HINTS

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One broken rule: which feature, which rule, what is wrong, how to fix it."""

    severity: Severity
    feature: str | None
    rule: str
    message: str
    hint: str
    index: int | None = None  # position in "features", None for file-level issues

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    """The outcome of :func:`validate`.

    ``ok`` is true when there is no error (warnings allowed). ``fixed`` lists what
    :func:`fix_winding` changed when the CLI ran with ``--fix``.
    """

    issues: list[Issue] = field(default_factory=list)
    n_features: int = 0
    source: str | None = None
    fixed: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)

    def rules(self) -> set[str]:
        """The set of rule codes reported."""
        return {i.rule for i in self.issues}

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ok": self.ok,
            "n_features": self.n_features,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "fixed": list(self.fixed),
            "issues": [i.to_dict() for i in self.issues],
        }

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()

    def summary(self) -> str:
        """One line: the verdict and the counts."""
        verdict = "OK" if self.ok else "FAILED"
        src = f"{self.source}: " if self.source else ""
        return (
            f"{src}{verdict}: {self.n_features} features, {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings"
        )


class _Collector:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(
        self,
        severity: Severity,
        rule: str,
        message: str,
        *,
        feature: str | None = None,
        index: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.issues.append(
            Issue(severity, feature, rule, message, hint or HINTS.get(rule, ""), index)
        )

    def error(self, rule: str, message: str, **kw: Any) -> None:
        self.add("error", rule, message, **kw)

    def warning(self, rule: str, message: str, **kw: Any) -> None:
        self.add("warning", rule, message, **kw)
