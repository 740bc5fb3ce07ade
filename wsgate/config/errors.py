"""Configuration diagnostics that always say where: source, key path, line and column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a value came from: a file with its position, or a flag/env/label name."""

    source: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.source
        if self.column is None:
            return f"{self.source}:{self.line}"
        return f"{self.source}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a configuration, an error or a warning."""

    message: str
    path: str = ""
    mark: Mark | None = None
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = str(self.mark) if self.mark is not None else ""
        parts = [p for p in (where, self.path) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class ConfigError(Exception):
    """A configuration that cannot be used; carries every problem found, each located."""

    def __init__(self, diagnostics: Iterable[Diagnostic] | str, *, path: str = "",
                 mark: Mark | None = None) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics, path, mark)]
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]
