"""Training config values: each one that would crash a run, or run it without meaning, is
refused when the config is read, in one line naming the file and the key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.models import MAX_WORKING_SHORT_SIDE, MIN_WORKING_SHORT_SIDE
from training.config import ConfigError, config_from_dict, load_config, training_differences
from training.run import budget_minutes


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train]\nthreads = 0\n", r"train\.threads must be >= 1, got 0"),
        ("[train]\nnum_workers = -1\n", r"train\.num_workers must be >= 0 .*got -1"),
        ("[train]\nval_frames = 0\n", r"train\.val_frames must be >= 1, got 0"),
        ("[train]\nlog_every_steps = 0\n", r"train\.log_every_steps must be >= 1, got 0"),
        ("[train]\nscale_jitter = [1.5, 0.5]\n", r"train\.scale_jitter must be \[low, high\]"),
        ("[train]\nscale_jitter = [0, 1.2]\n", r"train\.scale_jitter must be .*0 < low"),
        ("[train]\nscale_jitter = [1.0]\n", r"train\.scale_jitter must be \[low, high\]"),
        ("[train]\nmax_steps = -5\n", r"train\.max_steps must be >= 0 .*got -5"),
        ("[train]\nmax_minutes = -1\n", r"train\.max_minutes must be >= 0"),
        ("[train]\nval_every_steps = -2\n", r"train\.val_every_steps must be >= 0"),
        ("[train]\nval_every_minutes = -1\n", r"train\.val_every_minutes must be >= 0"),
        (
            "[train]\ncheckpoint_every_minutes = -1\n",
            r"train\.checkpoint_every_minutes must be >= 0",
        ),
        (
            "[data]\nstore_short_side = 160\n[train]\ncrop = 4000\n",
            r"train\.crop must be <= data\.store_short_side \(160\), got 4000",
        ),
        ("[data]\nmax_frames = -1\n", r"data\.max_frames must be >= 0"),
        ("[data]\ngap_frames = -1\n", r"data\.gap_frames must be >= 0"),
        # Weights nothing could load: the pipeline's own minimum.
        (
            "[model]\nworking_short_side = -5\n",
            r"model\.working_short_side must be 16 to 2160 .*-5",
        ),
        ("[model]\nworking_short_side = 0\n", r"model\.working_short_side must be 16 to 2160 .*0"),
        ("[train]\nseed = -1\n", r"train\.seed must be >= 0, got -1"),
        ("[train]\nweight_decay = -1\n", r"train\.weight_decay must be >= 0 .*got -1"),
        ("[train]\ngrad_clip = -1\n", r"train\.grad_clip must be > 0, got -1"),
        ("[train]\ngrad_clip = 0\n", r"train\.grad_clip must be > 0, got 0"),
        ("[train]\nmin_lr_fraction = -3\n", r"train\.min_lr_fraction must be in \[0, 1\]"),
        ("[train]\nmin_lr_fraction = 1.5\n", r"train\.min_lr_fraction must be in \[0, 1\]"),
        ("[train]\nssim_weight = -0.2\n", r"train\.ssim_weight must be >= 0, got -0\.2"),
        (
            "[train]\nl1_weight = 0\nssim_weight = 0\nalpha_weight = 0\ncolour_weight = 0\n",
            r"train\.l1_weight, ssim_weight, alpha_weight, colour_weight cannot all be 0",
        ),
        ("[paper]\nndf = 0\n", r"paper\.ndf must be >= 1, got 0"),
        ("[paper]\nlr = 0\n", r"paper\.lr must be > 0, got 0"),
        ("[paper]\nbeta1 = 1\n", r"paper\.beta1 must be in \[0, 1\), got 1"),
        ("[paper]\nbeta2 = -0.5\n", r"paper\.beta2 must be in \[0, 1\), got -0\.5"),
        ("[paper]\ngan_weight = -1\n", r"paper\.gan_weight must be >= 0, got -1"),
        (
            "[paper]\ngan_weight = 0\nl1_weight = 0\n",
            r"paper\.gan_weight, l1_weight cannot all be 0",
        ),
        ("[data]\nmin_sharpness = -1\n", r"data\.min_sharpness must be >= 0"),
        ("[data]\nmin_colourfulness = -1\n", r"data\.min_colourfulness must be >= 0"),
        ("[data]\nmax_brightness = 300\n", r"data\.max_brightness must be in \[0, 255\]"),
        (
            "[data]\nmin_brightness = 240\n",  # above the default max, 235
            r"data\.min_brightness must be <= data\.max_brightness \(235\.0\), got 240",
        ),
        # TOML's inf and nan pass every >= check: no key means either.
        ("[train]\nmax_minutes = inf\n", r"train\.max_minutes: expected a finite number"),
        ("[train]\nlr = nan\n", r"train\.lr: expected a finite number, got nan"),
        ("[train]\nscale_jitter = [0.8, inf]\n", r"train\.scale_jitter: expected a finite"),
        ("[smoke]\ntint = [0.0, inf]\n", r"smoke\.tint: expected a finite number"),
    ],
)
def test_values_that_cannot_train_name_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=r"bad\.toml: " + message):
        load_config(write(tmp_path, text))


def test_the_shipped_defaults_and_edge_values_pass() -> None:
    raw = {
        "model": {"working_short_side": MIN_WORKING_SHORT_SIDE},
        "data": {"store_short_side": 96, "min_brightness": 0, "max_brightness": 0},
        "train": {
            "crop": 96,
            "scale_jitter": [1.0, 1.0],
            "num_workers": 0,
            "max_steps": 0,
            "min_lr_fraction": 1,
            "weight_decay": 0,
            "l1_weight": 0,
            "ssim_weight": 0,
            "alpha_weight": 0,  # one weight left: something to learn
        },
        "paper": {"beta1": 0, "gan_weight": 0},
    }
    config = config_from_dict(raw)
    assert config.train.crop == config.data.store_short_side == 96


def test_working_short_side_follows_the_pipelines_rule() -> None:
    """The rule the pipeline applies to the weights' working_short_side, at load."""
    low, high = MIN_WORKING_SHORT_SIDE, MAX_WORKING_SHORT_SIDE
    for side in (low, high):
        config = config_from_dict({"model": {"working_short_side": side}})
        assert config.model.working_short_side == side
    for side in (low - 1, high + 1):
        with pytest.raises(ConfigError, match=f"must be {low} to {high}"):
            config_from_dict({"model": {"working_short_side": side}})


@pytest.mark.parametrize("minutes", [-1.0, math.nan, math.inf])
def test_max_minutes_override_is_checked_as_the_config_is(minutes: float) -> None:
    config = config_from_dict({"train": {"max_steps": 10}})
    with pytest.raises(ConfigError, match=r"--max-minutes must be >= 0 and finite, got"):
        budget_minutes(config, minutes)
    assert budget_minutes(config, 0.0) == 0.0  # no time limit: the 10 steps are the budget
    assert budget_minutes(config, None) == config.train.max_minutes


def test_max_minutes_zero_without_a_step_limit_is_no_budget() -> None:
    config = config_from_dict({"train": {"max_steps": 0}}, "run.toml")
    with pytest.raises(ConfigError, match=r"--max-minutes 0 .*run\.toml: train\.max_steps 0"):
        budget_minutes(config, 0.0)


def test_cli_train_reports_each_bad_value_in_one_line(tmp_path: Path, capsys) -> None:
    from desmoke_app.cli import main

    out = tmp_path / "run"
    config = write(tmp_path, "[train]\nthreads = 0\n")
    assert main(["train", "--config", str(config), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"desmoke: error: {config}: train.threads must be >= 1, got 0"]
    assert not out.exists()  # refused before anything was made


def test_a_relative_data_variable_is_taken_from_the_current_folder(
    tmp_path: Path, monkeypatch
) -> None:
    """README: `DESMOKE_DATA=../shared/data desmoke train --config training/configs/...`:
    the variable was set in the user's shell, so ../shared/data is from where they are; a
    plain relative path in the file stays relative to the config's folder."""
    configs = tmp_path / "project" / "configs"
    configs.mkdir(parents=True)
    config = configs / "c.toml"
    config.write_text('[data]\nsources = ["${DESMOKE_DATA}/clear/a.mp4", "b.mp4"]\n')
    monkeypatch.chdir(tmp_path / "project")
    monkeypatch.setenv("DESMOKE_DATA", "../shared/data")
    sources = load_config(config).data.sources
    assert sources == [str(tmp_path / "shared/data/clear/a.mp4"), str(configs / "b.mp4")]
    monkeypatch.setenv("DESMOKE_DATA", "")
    with pytest.raises(ConfigError, match="names an unset environment variable, DESMOKE_DATA"):
        load_config(config)  # empty: as unset
    monkeypatch.delenv("DESMOKE_DATA")
    with pytest.raises(ConfigError, match="names an unset environment variable, DESMOKE_DATA"):
        load_config(config)


# ----------------------------------------------------------------------------- resume checks

MOVED = {
    "data": {"sources": ["${DESMOKE_DATA}/clear/a.mp4", "clips/b.mp4"]},
    "train": {"init_weights": "stage1.safetensors"},
}


def moved_run(monkeypatch, raw: dict) -> list[str]:
    """What a resume of a run of MOVED refuses: the run was started from /home/u/repo with
    the data on /mnt/old, and is resumed with `raw` from /srv/repo with the data on /mnt/new
    (GPU machines are lent per session)."""
    monkeypatch.setenv("DESMOKE_DATA", "/mnt/old/data")
    run = config_from_dict(MOVED, "/home/u/repo/configs/fast.toml").to_dict()
    monkeypatch.setenv("DESMOKE_DATA", "/mnt/new/data")
    return training_differences(run, config_from_dict(raw, "/srv/repo/configs/fast.toml"))


def test_a_resume_compares_paths_as_written_not_where_they_now_lead(monkeypatch) -> None:
    assert moved_run(monkeypatch, MOVED) == []


def test_a_resume_with_other_sources_is_refused_naming_them_as_written(monkeypatch) -> None:
    other = {**MOVED, "data": {"sources": ["${DESMOKE_DATA}/clear/a.mp4"]}}
    assert moved_run(monkeypatch, other) == [
        "data.sources ['${DESMOKE_DATA}/clear/a.mp4'] "
        "(the run's: ['${DESMOKE_DATA}/clear/a.mp4', 'clips/b.mp4'])"
    ]


def test_init_weights_is_free_on_a_resume(monkeypatch) -> None:
    """A resume starts from its checkpoint: init_weights is read only by a new run."""
    other = {**MOVED, "train": {"init_weights": "/elsewhere/stage2.safetensors"}}
    assert moved_run(monkeypatch, other) == []


def test_a_run_config_without_paths_as_written_compares_resolved_paths(monkeypatch) -> None:
    """Checkpoints written before paths_as_written: their paths can only be compared as
    resolved, so they resume where the paths still lead to the same files."""
    monkeypatch.setenv("DESMOKE_DATA", "/mnt/old/data")
    run = config_from_dict(MOVED, "/home/u/repo/configs/fast.toml").to_dict()
    del run["paths_as_written"]
    assert training_differences(run, config_from_dict(MOVED, "/home/u/repo/configs/a.toml")) == []
    monkeypatch.setenv("DESMOKE_DATA", "/mnt/new/data")
    moved = config_from_dict(MOVED, "/home/u/repo/configs/a.toml")
    assert [d.split()[0] for d in training_differences(run, moved)] == ["data.sources"]


def test_a_shipped_config_is_taken_by_its_name(tmp_path, monkeypatch) -> None:
    """An installed project has no training/configs in the user's folder: `--config fast`
    takes the shipped one; a file of that name in the working folder still comes first."""
    from training.config import SHIPPED_CONFIGS

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESMOKE_DATA", str(tmp_path))  # the shipped sources name it
    assert load_config("paper").model.name == "paper"
    assert load_config("fast").path == str(SHIPPED_CONFIGS / "fast.toml")
    (tmp_path / "fast").write_text('[model]\nname = "paper"\n')
    assert load_config("fast").model.name == "paper"
    with pytest.raises(ConfigError, match=r"fastt: config file not found \(shipped .*fast, "):
        load_config("fastt")


# ----------------------------------------------------------------------------- Windows files

NOTEPAD_CONFIG = "[data]\nsources = ['clips/a.mp4']\n[train]\nthreads = 1\n"


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """QA: Windows Notepad's UTF-8 starts with a byte-order mark: "not valid TOML (Invalid
    statement (at line 1, column 1))"."""
    path = tmp_path / "notepad.toml"
    path.write_bytes(NOTEPAD_CONFIG.encode("utf-8-sig"))
    config = load_config(path)
    assert config.train.threads == 1
    assert config.paths_as_written["data.sources"] == ["clips/a.mp4"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])  # with and without a BOM
def test_a_utf16_config_is_one_line_saying_to_save_it_as_utf8(tmp_path, encoding) -> None:
    path = tmp_path / "unicode.toml"
    path.write_bytes(NOTEPAD_CONFIG.encode(encoding))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: the config is not UTF-8 text: save it as UTF-8"


HINT = r"write Windows paths in single quotes \('C:\\Users\\\.\.\.'\) or with forward slashes"


@pytest.mark.parametrize(
    "text, message",
    [
        # \U starts a unicode escape: "Invalid hex value".
        (
            '[data]\nsources = [\n  "C:\\Users\\jose\\clip.mp4",\n]\n',
            r"not valid TOML \(Invalid hex value \(at line 3, column \d+\)\); .*" + HINT,
        ),
        # Valid TOML, but \t and \n are a tab and a new line: a path no one meant.
        (
            '[data]\nsources = ["C:\\temp\\new.mp4"]\n',
            r"data\.sources 'C:\\temp\\new\.mp4' holds a control character; .*" + HINT,
        ),
        (
            '[train]\ninit_weights = "D:\\runs\\best.safetensors"\n',
            r"train\.init_weights 'D:\\runs\\x08est\.safetensors' holds a control .*" + HINT,
        ),
    ],
    ids=["unicode escape", "tab and new line", "carriage return and backspace"],
)
def test_a_windows_path_in_double_quotes_says_how_to_write_it(tmp_path, text, message) -> None:
    with pytest.raises(ConfigError, match=r"bad\.toml: " + message):
        load_config(write(tmp_path, text))


def test_other_toml_errors_get_no_path_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid TOML") as error:
        load_config(write(tmp_path, "[train]\nthreads = = 2\n"))
    assert "single quotes" not in str(error.value)


def test_windows_paths_in_single_quotes_or_forward_slashes_are_kept(tmp_path: Path) -> None:
    text = "[data]\nsources = ['C:\\Users\\jose\\clip.mp4', \"C:/temp/new.mp4\"]\n"
    assert load_config(write(tmp_path, text)).paths_as_written["data.sources"] == [
        "C:\\Users\\jose\\clip.mp4",
        "C:/temp/new.mp4",
    ]
