"""Table 1 and Figures 1-2 from known cell results; configs and presets."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from study_cells import SEEDED, cell

from edgessl.errors import ConfigError, UnknownNameError
from edgessl.stats import iqm_interval, mean_interval
from edgessl.study.config import StudyConfig, Unit, load_study_file, study_from_dict
from edgessl.study.figures import figure_by_backbone, figure_by_method, save_figure
from edgessl.study.presets import STUDY_BACKBONES, STUDY_METHODS, preset_names, resolve_study
from edgessl.study.results import read_cell, write_cell
from edgessl.study.table import build_table
from edgessl.training.config import TrainConfig

CELLS = [
    cell("simclr", "resnet18", [(1, 0.25), (2, 0.625), (3, 0.5)], 100.0, 4.0e7, 11_000_000, kwh=0.5),
    cell("simclr", "squeezenet", [(1, 0.125), (2, 0.375)], 30.0, 1.0e7, 700_000, kwh=0.25),
    cell("rotnet", "resnet18", [(1, 0.75)], 300.0, 6.0e7, 12_000_000, kwh=None),
    cell("byol", "squeezenet", [(1, 0.0625), (2, 0.1875)], 50.0, 3.0e7, 900_000, kwh=0.75, recipe="short"),
]


def test_table_markdown_and_csv_hold_exact_values() -> None:
    table = build_table(
        CELLS, "knn", methods=["simclr", "rotnet", "byol"], backbones=["resnet18", "squeezenet"]
    )
    markdown = table.to_markdown().splitlines()
    assert markdown[2] == "|  | resnet18 | squeezenet | all backbones (IQM) |"
    assert "| simclr (paper recipe) | 0.625 (1) | 0.375 (1) | 0.500 (2) |" in markdown
    assert "| rotnet (paper recipe) | 0.750 (1) | n/a | 0.750 (1) |" in markdown
    assert "| byol (short recipe) | n/a | 0.188 (1) | 0.188 (1) |" in markdown
    # one seed per cell: no interval, so no method can be called best
    assert (
        "| best (95% CIs separate) | tied: rotnet, simclr | tied: simclr, byol | tied: rotnet, simclr, byol |"
        in (markdown)
    )
    assert "| Avg. MACs @32x32 (thop multiply-accumulates) | 5.000E+07 | 2.000E+07 | n/a |" in markdown
    assert "| Avg. FLOPs @32x32 (= 2 x MACs) | 1.000E+08 | 4.000E+07 | n/a |" in markdown
    assert "| Avg. MACs @224x224 (the study's 'FLOPs' row) | 2.450E+09 | 9.800E+08 | n/a |" in markdown
    assert "| Avg. params (M) | 11.500 | 0.800 | n/a |" in markdown
    assert "| Avg. training time (s) | 200.0 | 40.0 | n/a |" in markdown
    assert "| Avg. energy (kWh) | 0.5 | 0.5 | n/a |" in markdown  # rotnet's unknown energy is not a zero
    csv_rows = [line.split(",") for line in table.to_csv().splitlines()]
    assert csv_rows[0] == ["row", "column", "estimate", "ci_low", "ci_high", "n"]
    assert csv_rows[1:4] == [
        ["simclr (paper recipe)", "resnet18", "0.625", "", "", "1"],
        ["simclr (paper recipe)", "squeezenet", "0.375", "", "", "1"],
        ["simclr (paper recipe)", "all backbones (IQM)", "0.5", "", "", "2"],
    ]
    assert ["rotnet (paper recipe)", "squeezenet", "", "", "", ""] in csv_rows
    assert ["Avg. training time (s)", "resnet18", "200.0", "", "", ""] in csv_rows
    linear = build_table(CELLS, "linear")
    assert [entry.estimate for entry in linear.rows[0].values] == [0.5, 0.5, 0.5]
    assert linear.columns == ("resnet18", "squeezenet", "all backbones (IQM)")


def test_seeds_become_intervals_and_best_is_marked_only_when_intervals_separate() -> None:
    table = build_table(SEEDED, "knn")
    rows = {row.label: row for row in table.rows}
    simclr = rows["simclr (paper recipe)"].values
    assert simclr[0] == mean_interval([0.60, 0.62, 0.61]) and simclr[0].n == 3
    assert simclr[2] == iqm_interval([[0.60, 0.62, 0.61], [0.40, 0.45, 0.35]])
    t = 4.302652729911275  # t(0.975, 2): the half-width by hand for [0.60, 0.62, 0.61], sd 0.01
    assert simclr[0].half_width == pytest.approx(t * 0.01 / 3**0.5)
    # resnet18 separates; on squeezenet the intervals overlap; pooled over both, simclr's IQM interval
    # (0.515, middle four of six) lies above rotnet's (0.355)
    assert rows["best (95% CIs separate)"].values == ("simclr", "tied: rotnet, simclr", "simclr")
    assert "| simclr (paper recipe) | 0.610 ± 0.025 (3) |" in table.to_markdown()


def test_figures_draw_the_mean_over_seeds_with_a_band(tmp_path: Path) -> None:
    figure = figure_by_method(SEEDED, "knn")
    ax = figure.axes[0]
    assert [line.get_label() for line in ax.lines] == ["resnet18", "squeezenet"]
    assert list(ax.lines[0].get_ydata()) == pytest.approx([0.305, 0.61])
    bands = ax.collections  # one fill_between per curve
    assert len(bands) == 2
    top = bands[0].get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx(mean_interval([0.60, 0.62, 0.61]).high)
    assert not figure_by_method(CELLS, "knn").axes[0].collections  # one seed: no band


def test_figures_have_a_panel_per_method_or_backbone_and_a_curve_per_cell(tmp_path: Path) -> None:
    by_method = figure_by_method(CELLS, "knn")
    assert [ax.get_title() for ax in by_method.axes] == ["simclr", "rotnet", "byol"]
    assert [[line.get_label() for line in ax.lines] for ax in by_method.axes] == [
        ["resnet18", "squeezenet"],
        ["resnet18"],
        ["squeezenet"],
    ]
    assert list(by_method.axes[0].lines[0].get_xdata()) == [1, 2, 3]
    assert list(by_method.axes[0].lines[0].get_ydata()) == [0.25, 0.625, 0.5]
    by_backbone = figure_by_backbone(CELLS, "knn", methods=STUDY_METHODS, backbones=STUDY_BACKBONES)
    assert len(by_backbone.axes) == 5  # 2 x 3 grid, the sixth axis removed
    assert [len(ax.lines) for ax in by_backbone.axes] == [0, 0, 2, 0, 2]
    for figure, name, size in ((by_method, "f1.png", (1200, 300)), (by_backbone, "f2.png", (1200, 600))):
        path = save_figure(figure, tmp_path / name)
        width, height = struct.unpack(">II", path.read_bytes()[16:24])  # PNG IHDR
        assert (width, height) == size


def test_cell_result_round_trips_through_its_file(tmp_path: Path) -> None:
    assert read_cell(tmp_path) is None
    write_cell(CELLS[0], tmp_path)
    assert read_cell(tmp_path) == CELLS[0]
    (tmp_path / "study_cell.json").write_text("{not json")
    assert read_cell(tmp_path) is None


def test_presets_and_yaml_configs(tmp_path: Path) -> None:
    assert {"study-stl10", "study-quick"} <= set(preset_names())
    full = resolve_study("study-stl10")
    assert (
        len(full.cells()) == 25
        and full.train.image_size == 96
        and full.train.save_every == 5
        and full.protocol == "finetune"
    )
    quick = resolve_study("study-quick")
    assert quick.train.data == "shapes10" and quick.protocol == "knn"
    # the presets' epochs are the short recipes' regime
    assert full.train.recipe == quick.train.recipe == "short"
    config_file = tmp_path / "mine.yaml"
    config_file.write_text(
        "methods: [simclr]\nbackbones: [squeezenet, resnet18]\nbatch_sizes: {simclr-resnet18: 8}\n"
        "train: {epochs: 4, batch_size: 16, grad_accum: 2}\n"
    )
    config = resolve_study(config_file)
    assert config.name == "mine" and config.methods == ("simclr",) and config.train.epochs == 4
    assert config.train.grad_accum == 2  # any edgessl train option reaches every cell
    assert (
        config.batch_size_for("simclr", "resnet18") == 8
        and config.batch_size_for("simclr", "squeezenet") == 16
    )
    with pytest.raises(UnknownNameError, match="study-quick"):
        resolve_study("study-quik")
    config_file.write_text("methods: [simclr]\nbackbones: [squeezenet]\ntrain: {epoch: 4}\n")
    with pytest.raises(ConfigError, match="epoch"):
        load_study_file(config_file)
    config_file.write_text("methods: [simclr]\nbackbones: [squeezenet]\nepochs: 4\npretext_split: train\n")
    with pytest.raises(ConfigError, match="epochs, pretext_split now go under 'train:'"):
        load_study_file(config_file)  # the flat schema of edgessl 0.1 says where its keys went
    config_file.write_text("methods: [simclr\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_study_file(config_file)
    with pytest.raises(ConfigError, match="backbones"):
        study_from_dict({"methods": ["simclr"]})
    with pytest.raises(ConfigError, match="table_protocol"):
        StudyConfig(
            methods=("simclr",), backbones=("resnet18",), protocols=("knn",), table_protocol="finetune"
        )


def test_cli_lists_and_prints_presets(capsys: pytest.CaptureFixture[str]) -> None:
    from edgessl.cli import main

    assert main(["study", "--list-presets"]) == 0
    listing = capsys.readouterr().out
    assert "study-stl10" in listing and "study-quick" in listing
    assert (
        main(["study", "study-stl10", "--out", "elsewhere", "--table-protocol", "knn", "--print-config"]) == 0
    )
    printed = capsys.readouterr().out
    assert "out: elsewhere" in printed and "table_protocol: knn" in printed
    assert main(["study", "study-quick", "--data-root", "/data/here", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["data_root"] == "/data/here" and printed["train"]["recipe"] == "short"
    # what --print-config prints loads back as the same study
    assert study_from_dict(printed) == replace(
        resolve_study("study-quick"),
        train=replace(resolve_study("study-quick").train, data_root="/data/here"),
    )
    assert main(["study", "study-quick", "--table-protocol", "linear"]) == 2
    assert "not one of protocols" in capsys.readouterr().err


def test_a_study_passes_its_recipe_to_every_cell_and_rejects_an_unknown_one(tmp_path: Path) -> None:
    from edgessl.study.cell import train_config
    from edgessl.study.checks import validate_names

    study = StudyConfig(
        methods=("byol", "rotnet"),
        backbones=("squeezenet",),
        train=TrainConfig(recipe="short", method_overrides={"hidden_dim": 64}),
        method_overrides={"byol": {"base_momentum": 0.9}},
    )
    cell = train_config(study, Unit("byol", "squeezenet", 7), tmp_path)
    assert (cell.recipe, cell.method, cell.backbone, cell.seed, cell.out) == (
        "short",
        "byol",
        "squeezenet",
        7,
        str(tmp_path),
    )
    assert cell.method_overrides == {"hidden_dim": 64, "base_momentum": 0.9}  # the study's, then the method's
    assert study_from_dict({"methods": ["simclr"], "backbones": ["squeezenet"]}).train.recipe == "paper"
    with pytest.raises(ConfigError, match="rotnet has no recipe 'long'"):
        validate_names(
            StudyConfig(methods=("rotnet",), backbones=("squeezenet",), train=TrainConfig(recipe="long"))
        )
