"""Every option of every config group composes, resolves and builds its part."""

import inspect

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import get_class, get_method
from omegaconf import OmegaConf

from conftest import CONF_DIR, compose_config
from medmap.builders import build_baseline, build_logger, build_module, effective_batch_size
from medmap.data import EXPERIMENT_KEYS, ImageCollection
from medmap.errors import UserFacingError
from medmap.identity import trains_a_network
from medmap.methods import ContrastiveMapModule
from medmap.reporting.plotting import plot_map
from medmap.runtime.devices import native_bf16, trainer_arguments, training_device, trains_in_bf16

GROUPS = ("dataset", "aug", "loss", "method", "trainer", "logger", "experiment")
REQUIRED = {"imagefolder": ["dataset.root=/some/folder"], "npz": ["dataset.path=/some/file.npz"]}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_the_contracted_options_exist():
    assert set(options("dataset")) >= {
        "bloodmnist", "dermamnist", "pathmnist", "breastmnist", "leukemia", "pcam",
        "imagefolder", "npz"}  # fmt: skip
    assert set(options("aug")) == {"default", "rot90", "randrot", "nocrop", "nojitter", "nogray"}
    assert set(options("loss")) == {"cauchy", "cosine"}
    assert set(options("method")) >= {"tsimcne", "simclr", "tsne"}
    assert set(options("trainer")) >= {"cpu", "gpu"}
    assert set(options("logger")) == {"none", "csv", "wandb"}
    assert set(options("experiment")) >= {"smoke", "demo", "cpu", "paper"}


def tiny_collection() -> ImageCollection:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28, 3), dtype=np.uint8)
    return ImageCollection("tiny", images, np.arange(40) % 4, list("abcd"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_composes_and_builds(group, tmp_path):
    for option in options(group):
        overrides = [f"{group}={option}", *REQUIRED.get(option, [])]
        if group != "experiment":
            overrides.append("experiment=smoke")
        cfg = compose_config(overrides, tmp_path / option)
        OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
        loader = get_method(cfg.dataset._target_)
        keys = set(cfg.dataset) - set(EXPERIMENT_KEYS)
        inspect.signature(loader).bind(**dict.fromkeys(keys))
        if trains_a_network(cfg):
            module = build_module(cfg, tiny_collection(), effective_batch_size(8, 40))
            assert module.total_epochs == sum(cfg.method.epochs)
            assert module.loss_fn is not None and module.augmenter.spec.name == cfg.aug.name
        else:
            assert build_baseline(cfg).features == cfg.method.features
        build_logger(cfg, tmp_path / option)
        if cfg.trainer.accelerator != "gpu":
            pl.Trainer(**trainer_arguments(cfg.trainer), logger=False)


def test_the_training_device_and_precision_follow_the_trainer_settings():
    cpu = compose_config(["trainer=cpu"]).trainer
    assert training_device(cpu).type == "cpu"
    assert trains_in_bf16(cpu) == (cpu.precision == "bf16-mixed" or (
        cpu.precision == "auto" and native_bf16("cpu")))  # fmt: skip
    for precision, bf16 in (("32-true", False), ("bf16-mixed", True)):
        assert trains_in_bf16(compose_config([f"trainer.precision={precision}"]).trainer) == bf16
    auto = compose_config(["trainer.accelerator=auto"]).trainer
    assert training_device(auto).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_the_light_trains_a_network_rule_agrees_with_the_method_classes():
    for option in options("method"):
        cfg = compose_config([f"method={option}"])
        trains = issubclass(get_class(cfg.method._target_), ContrastiveMapModule)
        assert trains_a_network(cfg) == trains, option


def test_the_method_kind_is_explicit_and_old_run_configs_still_read():
    with pytest.raises(UserFacingError, match="method.kind must be one of"):
        trains_a_network(compose_config(["method.kind=umap"]))
    saved_before_kind = OmegaConf.create({"method": {"name": "tsne", "features": "pixels"}})
    assert not trains_a_network(saved_before_kind)
    assert trains_a_network(OmegaConf.create({"method": {"name": "tsimcne"}}))


def test_method_chooses_its_loss_unless_overridden(tmp_path):
    assert compose_config(["method=simclr"]).loss.kernel == "cosine"
    assert compose_config(["method=tsimcne"]).loss.kernel == "cauchy"
    assert compose_config(["method=simclr", "loss=cauchy"]).loss.kernel == "cauchy"
    assert compose_config(["loss=cosine", "loss.temperature=0.2"]).loss.temperature == 0.2


def test_budgets_set_epochs_and_batch_size_and_experiments_compose_with_any_dataset():
    paper = compose_config([])
    assert list(paper.method.epochs) == [1000, 50, 450]
    assert list(paper.method.warmup_epochs) == [10, 0, 10] and paper.method.batch_size == 1024
    assert list(paper.method.lr_factors) == [1.0, 1.0, 0.001] and paper.method.lr_per_256 == 0.03
    assert list(compose_config(["budget=cpu"]).method.lr_factors) == [1.0, 1.0, 0.1]
    simclr = compose_config(["method=simclr"])
    assert list(simclr.method.epochs) == [1000] and list(simclr.method.out_dims) == [128]
    smoke = compose_config(["experiment=smoke", "dataset=leukemia", "aug=rot90"])
    assert smoke.dataset.name == "leukemia" and smoke.aug.name == "rot90"
    assert smoke.budget == "smoke" and smoke.model.width < 64
    explicit = compose_config(["experiment=smoke", "method.epochs=[3,1,1]"])
    assert list(explicit.method.epochs) == [3, 1, 1]
    demo = compose_config(["experiment=demo"])
    assert demo.dataset.name == "bloodmnist" and demo.method.name == "tsimcne"
    # the demo budget: the cpu budget's network with a stride-2 stem, twice its rate
    assert demo.method.lr_per_256 == 0.96 and demo.budget == "demo"
    assert demo.model.stem_stride == 2 and demo.model.width == 16
    assert list(demo.method.epochs) == [27, 3, 24]
    short = compose_config(["experiment=short", "dataset=leukemia", "aug=rot90"])
    assert (
        short.budget == "short"
        and short.model.stem_stride == 2
        and short.dataset.name == "leukemia"
    )
    assert short.time_budget_minutes is None and list(short.method.epochs) == [18, 2, 16]
    assert compose_config(["experiment=cpu"]).model.stem_stride == 1
    # the demo is time-boxed; the tables' runs are not
    assert demo.time_budget_minutes == 12
    assert compose_config(["experiment=cpu"]).time_budget_minutes is None
    assert compose_config(["budget=smoke"]).method.lr_per_256 == 0.03
    assert compose_config(["experiment=cpu", "method.lr_per_256=0.1"]).method.lr_per_256 == 0.1


def test_batch_size_larger_than_dataset_shrinks_and_tiny_values_fail():

    assert effective_batch_size(256, 30) == 30
    assert effective_batch_size(64, 1000) == 64
    with pytest.raises(UserFacingError, match="at least 2"):
        effective_batch_size(1, 100)


def test_map_legend_shows_class_names(tmp_path):
    names = ["basophil", "eosinophil", "erythroblast"]
    labels = np.array([0, 1, 2, 1])
    shown = plot_map(np.zeros((4, 2)), labels, names, tmp_path / "map.png", "title")
    assert shown == names and (tmp_path / "map.png").stat().st_size > 1000


def test_out_of_range_settings_become_user_errors(tmp_path):
    from medmap.errors import UserFacingError

    for override, fragment in [
        ("aug.hflip_p=1.5", "probability"),
        ("method.epochs=[5,3]", "one entry per phase"),
        ("model.width=0", "width"),
        ("loss.kernel=euclid", "cauchy"),
    ]:
        cfg = compose_config(["experiment=smoke", override], tmp_path)
        with pytest.raises(UserFacingError, match=fragment):
            build_module(cfg, tiny_collection(), 8)


@pytest.mark.parametrize("method", ["tsimcne", "simclr"])
def test_pcam_trains_at_the_studys_batch_512_and_lr_006_at_the_paper_budget(method):
    pcam = compose_config([f"method={method}", "dataset=pcam", "experiment=paper"])
    assert pcam.method.batch_size == 512
    assert pcam.method.lr_per_256 * pcam.method.batch_size / 256 == pytest.approx(0.06)
    blood = compose_config([f"method={method}", "dataset=bloodmnist", "experiment=paper"])
    assert blood.method.batch_size == 1024
    assert (
        compose_config([f"method={method}", "dataset=pcam", "experiment=cpu"]).method.batch_size
        < 512
    )


def test_precision_auto_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch):
    import medmap.runtime.devices as devices

    trainer = compose_config(["trainer=cpu"]).trainer
    assert trainer.precision == "auto"
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert devices.trainer_arguments(trainer)["precision"] == "32-true"
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert devices.trainer_arguments(trainer)["precision"] == "bf16-mixed"
    explicit = compose_config(["trainer=cpu", "trainer.precision=32-true"]).trainer
    assert devices.trainer_arguments(explicit)["precision"] == "32-true"
