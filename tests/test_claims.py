"""The verdicts on the poster's claims (reporting/claims.py) against hand-computed cases."""

import math

import pytest

from medmap.reporting.claims import (
    README_END,
    README_START,
    CellStats,
    claim_verdict,
    claims_table,
    compare,
    update_readme,
)


def test_a_clear_gap_is_reproduced_and_a_gap_the_other_way_is_not():
    assert compare(CellStats(0.5, 0.0, 3), CellStats(0.4, 0.0, 3), ">", 3)[0] == "reproduced"
    # s^2 = 0.01^2 * 3 / 2 per cell, se = sqrt(2 * s^2 / 3) = 0.01: d = -0.2 is 20 se below
    verdict, difference, se = compare(CellStats(0.1, 0.01, 3), CellStats(0.3, 0.01, 3), ">", 3)
    assert verdict == "not reproduced"
    assert difference == pytest.approx(-0.2) and se == pytest.approx(0.01)
    assert compare(CellStats(0.1, 0.01, 3), CellStats(0.3, 0.01, 3), ">=", 3)[0] == "not reproduced"


def test_a_gap_within_two_standard_errors_is_inconclusive_unless_at_least_is_claimed():
    a, b = CellStats(0.30, 0.05, 3), CellStats(0.25, 0.05, 3)  # se = 0.05, d = 0.05 < 2 se
    verdict, difference, se = compare(a, b, ">", 3)
    assert (verdict, se) == ("inconclusive", pytest.approx(0.05))
    assert compare(a, b, ">=", 3)[0] == "reproduced"
    assert compare(b, a, ">=", 3)[0] == "reproduced"  # -0.05 is not below -2 se


def test_cells_short_of_their_seeds_or_not_run_are_not_judged():
    verdict, difference, se = compare(CellStats(0.5, 0.0, 1), CellStats(0.2, 0.0, 1), ">", 3)
    assert verdict == "inconclusive at n=1/3" and difference == pytest.approx(0.3)
    assert math.isnan(se)
    assert compare(CellStats(0.5, 0.0, 2), CellStats(0.2, 0.0, 3), ">", 3)[0] == (
        "inconclusive at n=2/3")  # fmt: skip
    # a gap beyond 2 se the wrong way is already a "not reproduced" at n=2, saying so
    assert compare(CellStats(0.1, 0.0, 2), CellStats(0.2, 0.0, 2), ">", 3)[0] == (
        "not reproduced at n=2/3")  # fmt: skip
    assert compare(CellStats(0.5, 0.0, 1), CellStats(None, None, 0), ">", 3)[0] == "pending"
    assert compare(CellStats(0.5, None, 3), CellStats(0.2, 0.0, 3), ">", 3)[0] == "pending"
    # a score that is not a number (a diverged run's) judges nothing, least of all "at least"
    assert compare(CellStats(math.nan, 0.0, 3), CellStats(0.2, 0.0, 3), ">=", 3)[0] == "pending"


def test_a_claim_needs_all_its_comparisons():
    assert claim_verdict(["reproduced", "reproduced"]) == "reproduced"
    assert claim_verdict(["reproduced", "inconclusive"]) == "inconclusive"
    assert claim_verdict(["reproduced", "inconclusive at n=2/3", "inconclusive at n=1/3"]) == (
        "inconclusive at n=1/3")  # fmt: skip
    assert claim_verdict(["pending", "inconclusive at n=1/3"]) == "pending"
    assert claim_verdict(["reproduced", "pending", "not reproduced"]) == "not reproduced"
    assert claim_verdict(["not reproduced at n=2/3", "not reproduced"]) == "not reproduced"
    assert claim_verdict([]) == "pending"  # a claim with no comparison proves nothing
    assert claim_verdict(["not reproduced at n=2/3", "pending"]) == "not reproduced at n=2/3"
    # seeds compare as numbers, not as text ("10" sorts before "2")
    assert claim_verdict(["inconclusive at n=10/10", "inconclusive at n=2/10"]) == (
        "inconclusive at n=2/10")  # fmt: skip


ROWS = [  # as csv.DictReader gives cells.csv back: strings, empty where missing
    {"method": "tsimcne", "aug": "randrot", "n_seeds": "3", "silhouette_mean": "0.3",
     "silhouette_std": "0.01"},
    {"method": "tsimcne", "aug": "default", "n_seeds": "3", "silhouette_mean": "0.1",
     "silhouette_std": "0.01"},
    {"method": "tsne", "aug": "pixels", "n_seeds": "0", "silhouette_mean": "",
     "silhouette_std": ""},
]  # fmt: skip
CLAIMS = [
    {"claim": "rotations help", "compare": [
        {"a": "tsimcne/randrot", "b": "tsimcne/default", "metric": "silhouette", "kind": ">",
         "reference": ["0.50", "0.40"]}]},
    {"claim": "better than pixels", "compare": [
        {"a": "tsimcne/randrot", "b": "tsne/pixels", "metric": "silhouette", "kind": ">",
         "reference": None}]},
]  # fmt: skip


def test_the_claims_table_shows_both_cells_the_gap_and_the_verdicts():
    table = claims_table(CLAIMS, ROWS, seeds=3)
    lines = table.splitlines()
    assert len(lines) == 4  # header, rule, one line per comparison
    # se = 0.01 (as above): d = 0.2, 2 se = 0.02
    assert lines[2] == ("| rotations help → **reproduced** | tsimcne/randrot > tsimcne/default "
                        "(silhouette) | 0.50 vs 0.40 | 0.300 ± 0.010 (n=3) | 0.100 ± 0.010 (n=3) "
                        "| +0.200 (0.020) | reproduced |")  # fmt: skip
    assert lines[3] == ("| better than pixels → **pending** | tsimcne/randrot > tsne/pixels "
                        "(silhouette) | — | 0.300 ± 0.010 (n=3) | — | — | pending |")  # fmt: skip


def test_the_readme_table_is_replaced_between_its_markers_and_added_where_missing(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\nbefore\n{README_START}\nold table\n{README_END}\nafter\n")
    update_readme(readme, "new table\n")
    expected = f"# Title\nbefore\n{README_START}\nnew table\n{README_END}\nafter\n"
    assert readme.read_text() == expected
    update_readme(readme, "newer\n")  # again: the same place
    assert readme.read_text().count(README_START) == 1 and "new table" not in readme.read_text()
    plain = tmp_path / "plain.md"
    plain.write_text("# Notes\n")
    update_readme(plain, "table\n")
    assert plain.read_text() == f"# Notes\n\n{README_START}\ntable\n{README_END}\n"
    fresh = tmp_path / "new" / "README.md"
    update_readme(fresh, "table\n")
    assert fresh.read_text().startswith("# The poster's claims\n\n" + README_START)
