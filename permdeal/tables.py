"""Plain-text tables: the one formatter of every printed table (the JSON files carry the same
figures for machines). Part of the core: imports nothing of the project."""


def table(headers: list, rows: list, aligns: str | None = None) -> str:
    """A plain-text table; ``aligns`` is a string of ``l``/``r`` per column (default: the first
    column left, the others right)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    aligns = aligns or "l" + "r" * (len(headers) - 1)

    def fmt(row):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                         for c, w, a in zip(row, widths, aligns)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule] + [fmt(r) for r in cells[1:]])


def pct(v: float | None) -> str:
    """``v`` (a share) as a percentage with one decimal, ``-`` for None."""
    return "-" if v is None else f"{100 * v:.1f}%"
