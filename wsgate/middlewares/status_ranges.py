"""Status code ranges as the errors, retry and failover settings write them: ``"500"``,
``"500-599"``, or several of those separated by commas (``"404,418,500-599"``)."""

from __future__ import annotations

from collections.abc import Iterable

from wsgate.middlewares.errors import MiddlewareError

__all__ = ["StatusRanges", "parse_status_ranges"]


class StatusRanges:
    """Inclusive (low, high) pairs; ``contains`` is what the data path asks."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: Iterable[tuple[int, int]]) -> None:
        self.ranges = tuple(ranges)

    def contains(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __repr__(self) -> str:
        return f"StatusRanges({list(self.ranges)!r})"


def _number(text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.lstrip("+").isdigit():
        raise ValueError(f"invalid status code {text!r}")
    return int(text)


def parse_status_ranges(middleware: str, field: str, blocks: Iterable[str]) -> StatusRanges:
    """Parse ``blocks``; raise a :class:`MiddlewareError` naming ``field[i]`` on a bad one."""
    ranges: list[tuple[int, int]] = []
    for i, block in enumerate(blocks):
        for part in block.split(","):
            codes = part.split("-")
            try:
                low = _number(codes[0])
                high = _number(codes[1]) if len(codes) > 1 else low
            except ValueError as exc:
                raise MiddlewareError(middleware, f"{field}[{i}]", str(exc)) from None
            ranges.append((low, high))
    return StatusRanges(ranges)
