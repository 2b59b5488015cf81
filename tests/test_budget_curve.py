"""The map-per-minute curve (scripts/map_per_minute.py): points found in run directories,
means over seeds, the fastest seed's minutes, the table and the figure; the shipped settings
name schedules the time box can pick."""

import json

import pytest
from omegaconf import OmegaConf

from conftest import CONF_DIR
from medmap.reporting.budget_curve import curve_rows, curve_table, plot_curve, point_name

RECIPES = [
    {"name": "fast", "label": "fast recipe",
     "points": [{"epochs": [2, 1, 1], "seeds": 2}, {"epochs": [4, 1, 2]}]},
    {"name": "slow", "label": "slow recipe", "points": [{"epochs": [1, 1, 1]}]},
]  # fmt: skip


def write_run(root, name, silhouette, knn, linear, seconds):
    (root / name).mkdir(parents=True)
    metrics = {"silhouette": silhouette, "knn_acc": knn, "linear_acc": linear,
               "train_seconds": seconds}  # fmt: skip
    (root / name / "metrics.json").write_text(json.dumps(metrics))


def test_rows_average_seeds_and_take_the_fastest_seeds_minutes(tmp_path):
    write_run(tmp_path, "fast-2-1-1-seed0", 0.20, 75.0, 80.0, 300.0)
    write_run(tmp_path, "fast-2-1-1-seed1", 0.24, 77.0, 84.0, 420.0)  # shared the cores: slower
    write_run(tmp_path, "fast-4-1-2-seed0", 0.25, 78.0, 85.0, 600.0)
    (tmp_path / "slow-1-1-1-seed0").mkdir()  # started, never finished: no point
    rows = curve_rows(RECIPES, tmp_path)
    assert [(row["recipe"], row["epochs"], row["seeds"]) for row in rows] == [
        ("fast", [2, 1, 1], 2), ("fast", [4, 1, 2], 1)]  # fmt: skip
    first = rows[0]
    assert first["minutes"] == pytest.approx(5.0)
    assert first["silhouette"] == pytest.approx(0.22)
    assert first["silhouette_std"] == pytest.approx(0.02)  # population std of 0.20, 0.24
    assert first["knn_acc"] == pytest.approx(76.0) and first["linear_acc_std"] == pytest.approx(2.0)
    table = curve_table(rows)
    assert (
        "| fast recipe | [2, 1, 1] | 4 | 5.0 | 2 | 0.220 ± 0.020 | 76.0 ± 1.0 | 82.0 ± 2.0 |"
        in table
    )
    assert "| fast recipe | [4, 1, 2] | 7 | 10.0 | 1 | 0.250 | 78.0 | 85.0 |" in table


def test_the_figure_is_written(tmp_path):
    write_run(tmp_path, "fast-2-1-1-seed0", 0.20, 75.0, 80.0, 300.0)
    write_run(tmp_path, "slow-1-1-1-seed0", 0.10, 70.0, 78.0, 400.0)
    path = plot_curve(curve_rows(RECIPES, tmp_path), {"silhouette": [0.2]}, tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_shipped_points_are_schedules_the_time_box_can_pick():
    from medmap.runtime.time_budget import scaled_schedule

    settings = OmegaConf.load(CONF_DIR / "map_per_minute.yaml")
    stride2 = next(recipe for recipe in settings.recipes if recipe.name == "stride2")
    demo = OmegaConf.load(CONF_DIR / "method" / "tsimcne.yaml").budgets.demo
    for point in stride2.points:
        epochs, warmups = scaled_schedule(list(demo.epochs), list(demo.warmup_epochs),
                                          sum(point.epochs))  # fmt: skip
        assert (epochs, warmups) == (list(point.epochs), list(point.warmup_epochs))
    names = {point_name(r.name, list(p.epochs), 0) for r in settings.recipes for p in r.points}
    assert len(names) == sum(len(r.points) for r in settings.recipes)  # no two share a folder
