"""The figures the fault suite measured, printed as a table at the end of the run
(``pytest_terminal_summary`` in tests/faults/conftest.py) and quoted in docs/deploy.md."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FIGURES", "Figures", "Row"]


@dataclass
class Row:
    scenario: str
    faults: int = 0
    changes_made: int | None = None
    changes_served: int | None = None
    converge_s: float | None = None
    events_sent: int | None = None
    events_stored: int | None = None
    note: str = ""


@dataclass
class Figures:
    rows: list[Row] = field(default_factory=list)

    def add(self, scenario: str, **values: object) -> Row:
        row = Row(scenario, **values)  # type: ignore[arg-type]
        self.rows.append(row)
        return row

    def table(self) -> str:
        head = (
            "scenario",
            "faults",
            "changes made",
            "served",
            "s to converge",
            "events sent",
            "stored",
            "note",
        )

        def cell(v: object) -> str:
            if v is None:
                return "-"
            if isinstance(v, float):
                return f"{v:.2f}"
            return str(v)

        lines = [head] + [
            (
                r.scenario,
                cell(r.faults),
                cell(r.changes_made),
                cell(r.changes_served),
                cell(r.converge_s),
                cell(r.events_sent),
                cell(r.events_stored),
                r.note,
            )
            for r in self.rows
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        out = []
        for n, line in enumerate(lines):
            out.append(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
            if n == 0:
                out.append("-+-".join("-" * w for w in widths))
        return "\n".join(out)


FIGURES = Figures()
