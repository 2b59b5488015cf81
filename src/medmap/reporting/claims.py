"""The poster's claims checked on the reproduction's cells, each with a verdict by a stated rule.

A claim is a list of comparisons "cell a above cell b on a metric" (kind ``>``) or "a at least
b" (``>=``), read from the cells' rows (``cell_rows``, as written to cells.csv): their means and
seed spreads. The rule:

- d = mean(a) - mean(b); se = sqrt(s_a^2/n_a + s_b^2/n_b), with s the seeds' sample standard
  deviation (cells.csv stores the population one: s^2 = std^2 n / (n - 1));
- d < -2 se: **not reproduced**, for either kind; while a cell is short of its N seeds (but
  has 2 or more) **not reproduced at n=k/N**, a warning the last seeds may still lift;
- otherwise, while a cell is short of its seeds (or a cell has one seed): **inconclusive at
  n=k/N**; nothing run yet (or a score that is not a number): **pending**;
- otherwise ``>``: **reproduced** when d > 2 se, else **inconclusive**; ``>=``: **reproduced**;
- a claim is not reproduced when any of its comparisons is (on the most seeds among them),
  pending while any is, reproduced when all are, else inconclusive.

Two standard errors keep a claim from hanging on one lucky seed; with 3 seeds it is a coarse
test, which is why "inconclusive" is a verdict of its own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

README_START, README_END = "<!-- claims: start -->", "<!-- claims: end -->"


@dataclass(frozen=True)
class CellStats:
    mean: float | None
    std: float | None
    n: int

    def describe(self, digits: int) -> str:
        if not self.n or self.mean is None:
            return "—"
        spread = f" ± {self.std:.{digits}f}" if self.n > 1 else ""
        return f"{self.mean:.{digits}f}{spread} (n={self.n})"


def cell_stats(rows: list[dict], metric: str) -> dict[str, CellStats]:
    """``method/aug`` -> the cell's mean, std and seeds for ``metric``, from cells.csv rows
    (as read back from the file: empty strings for missing values)."""
    number = lambda value: None if value in (None, "") else float(value)  # noqa: E731
    return {
        f"{row['method']}/{row['aug']}": CellStats(
            number(row.get(f"{metric}_mean")), number(row.get(f"{metric}_std")), int(row["n_seeds"])
        )
        for row in rows
    }


def compare(a: CellStats, b: CellStats, kind: str, seeds: int) -> tuple[str, float | None, float]:
    """The verdict of "a {kind} b", the difference of means and its standard error."""
    numbers = (a.mean, b.mean, a.std, b.std)
    if any(x is None or not math.isfinite(x) for x in numbers) or not (a.n and b.n):
        return "pending", None, math.nan
    difference, fewest = a.mean - b.mean, min(a.n, b.n)
    at = f" at n={fewest}/{seeds}" if fewest < seeds else ""
    if fewest < 2:
        return f"inconclusive{at}", difference, math.nan
    se = math.sqrt(sum(cell.std**2 / (cell.n - 1) for cell in (a, b)))
    if difference < -2 * se:
        verdict = f"not reproduced{at}"
    elif at:
        verdict = f"inconclusive{at}"
    elif kind == ">=" or difference > 2 * se:
        verdict = "reproduced"
    else:
        verdict = "inconclusive"
    return verdict, difference, se


def _seeds_behind(verdict: str) -> float:
    """The seeds a verdict rests on: k of its "at n=k/N", all (inf) when it names none."""
    found = re.search(r"at n=(\d+)/", verdict)
    return int(found.group(1)) if found else math.inf


def claim_verdict(verdicts: list[str]) -> str:
    """Any not reproduced: not (on the most seeds among those); any pending: pending; all
    reproduced: reproduced; else inconclusive (on the fewest seeds where that is why)."""
    if not verdicts:
        return "pending"
    against = [v for v in verdicts if v.startswith("not reproduced")]
    if against:
        return max(against, key=_seeds_behind)
    if "pending" in verdicts:
        return "pending"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return min((v for v in verdicts if v.startswith("inconclusive")), key=_seeds_behind)


HEADER = (
    "| claim | comparison | reference (a vs b) | ours: a | ours: b | a - b (2 se) | verdict |\n"
    "|---|---|---|---|---|---|---|\n"
)


def claims_table(claims: list[dict], rows: list[dict], seeds: int) -> str:
    """The claims as a markdown table, one line per comparison, the claim's verdict in bold on
    its first line."""
    lines = []
    missing = CellStats(None, None, 0)
    metrics = {item["metric"] for claim in claims for item in claim["compare"]}
    stats = {metric: cell_stats(rows, metric) for metric in metrics}
    for claim in claims:
        found = []
        for item in claim["compare"]:
            cells = stats[item["metric"]]
            a, b = cells.get(item["a"], missing), cells.get(item["b"], missing)
            found.append((item, a, b, *compare(a, b, item["kind"], seeds)))
        overall = claim_verdict([verdict for _, _, _, verdict, _, _ in found])
        for k, (item, a, b, verdict, difference, se) in enumerate(found):
            digits = 1 if item["metric"].endswith("acc") else 3
            reference = item.get("reference")
            gap = "—" if difference is None else f"{difference:+.{digits}f}"
            if not math.isnan(se):
                gap += f" ({2 * se:.{digits}f})"
            cells = [
                f"{claim['claim']} → **{overall}**" if k == 0 else "",
                f"{item['a']} {item['kind']} {item['b']} ({item['metric']})",
                " vs ".join(str(value) for value in reference) if reference else "—",
                a.describe(digits),
                b.describe(digits),
                gap,
                verdict,
            ]
            lines.append("| " + " | ".join(cells) + " |\n")
    return HEADER + "".join(lines)


def update_readme(readme: Path, table: str, intro: str = "# The poster's claims\n") -> None:
    """Replace the text between the README's claims markers with ``table``; a README without
    them gets them at its end (a new one: ``intro``, then the table)."""
    text = readme.read_text() if readme.is_file() else intro
    if README_START not in text or README_END not in text:
        text = f"{text.rstrip()}\n\n{README_START}\n{README_END}\n"
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.parent.mkdir(parents=True, exist_ok=True)
    readme.write_text(f"{head}{README_START}\n{table}{README_END}{tail}")
