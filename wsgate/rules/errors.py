"""The one exception type of the rule engine."""

from __future__ import annotations

__all__ = ["RuleSyntaxError"]


class RuleSyntaxError(ValueError):
    """A router rule that cannot be parsed or compiled.

    It carries the whole rule and the 0-based character offset of the problem, so that a
    configuration error can point at the exact spot, e.g.
    ``Host(`a`) &&: expected a matcher at position 12``.
    """

    rule: str
    position: int
    detail: str

    def __init__(self, rule: str, position: int, detail: str) -> None:
        self.rule = rule
        self.position = position
        self.detail = detail
        super().__init__(f"{rule}: {detail} at position {position}")

    def __reduce__(self) -> tuple[type[RuleSyntaxError], tuple[str, int, str]]:
        # Keep the exception picklable with its context (multiprocessing, logging handlers).
        return (type(self), (self.rule, self.position, self.detail))
