"""Weights files whose tensors are fine but whose stored config is damaged, and the one rule
of which models run as named (shipped weights): refused with one line naming the file, by
the engine and by every front end (desmoke export, evaluate, export-model, info, the app).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch
from safetensors.torch import save_file

from desmoke_app.cli import main
from engine.models import (
    NoShippedWeights,
    WeightsError,
    build_network,
    default_config,
    load_network,
    read_config,
    runnable_models,
    shipped_weights,
)
from engine.models.weights import CONFIG_KEY
from engine.pipeline import Desmoker
from tests.clips import make_index_clip
from tests.frames import textured_frame

ARCH = {"widths": [8, 16, 32]}
REAL_ASSETS = shipped_weights("fast").parent

#: (what is changed in a good config, what the error says). None removes the key.
DAMAGE = {
    "model nope": ({"model": "nope"}, "names model 'nope', which is not a network model"),
    "model dcp": ({"model": "dcp"}, "names model 'dcp', which is not a network model"),
    "model list": ({"model": ["fast"]}, r"names model \['fast'\], which is not a network"),
    "no model": ({"model": None}, "its config names no model"),
    "arch list": ({"arch": [1, 2]}, r"architecture arguments \[1, 2\] do not fit model 'fast'"),
    "arch key": ({"arch": {"depth": 3}}, "unknown argument 'depth' .known: in_channels, widths"),
    "arch widths": ({"arch": {"widths": "wide"}}, "widths must be a list of 3 numbers"),
    "arch unshuffle": ({"arch": {"unshuffle": 2.5}}, "unshuffle must be a whole number 1-8"),
    "arch huge": ({"arch": {"widths": [8, 16, 10**9]}}, "widths must be a list of 3"),
    "arch channels": ({"arch": {"in_channels": 3, **ARCH}}, "in_channels must be 4"),
    "side text": ({"working_short_side": "big"}, "working_short_side must be a whole number"),
    "side small": ({"working_short_side": 8}, "16 to 2160, got 8"),
    "side large": ({"working_short_side": 25600}, "16 to 2160, got 25600"),
    "side bool": ({"working_short_side": True}, "working_short_side must be a whole"),
    "training": ({"training": "yes"}, "its config's training must be a table, got 'yes'"),
    # Bigger than a desktop app runs (engine.models.registry's budget).
    "arch wide": ({"arch": {"widths": [8, 16, 1024]}}, "each a whole number 1-512, got"),
    # The provenance `desmoke info` and the About box show: they used to fail on these.
    "minutes text": (
        {"training": {"steps": 5, "minutes": "ten"}},
        "its config's training.minutes must be a number, got 'ten'",
    ),
    "hardware number": ({"training": {"steps": 5, "hardware": 3}}, "training.hardware must be"),
    "frames list": (
        {"training": {"steps": 5, "data": {"frames": [1, 2]}}},
        r"training.data.frames must be a table of frame counts, got \[1, 2\]",
    ),
    "val list": ({"metrics": {"val": [1, 2]}}, "its config's metrics.val must be a table"),
    "psnr text": ({"metrics": {"val": {"psnr": "high"}}}, "metrics.val.psnr must be a number"),
    "version text": ({"version": "one"}, "its config's version must be a whole number"),
}


def damaged_weights(folder: Path, changes: dict, name: str = "damaged.safetensors") -> Path:
    """Tensors of a small fast network that load fine, beside a config with `changes`."""
    torch.manual_seed(0)
    tensors = {k: v.contiguous() for k, v in build_network("fast", ARCH).state_dict().items()}
    config = {**default_config("fast", ARCH), **changes}
    config = {key: value for key, value in config.items() if value is not None}
    path = folder / name
    save_file(tensors, str(path), metadata={CONFIG_KEY: json.dumps(config)})
    return path


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def nothing_shipped(tmp_path, monkeypatch) -> None:
    empty = tmp_path / "assets"
    empty.mkdir()
    monkeypatch.setattr("engine.models.weights.ASSETS_DIR", empty)


# -- the engine ------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "says"), DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_config_is_refused_naming_the_file(tmp_path, changes, says) -> None:
    path = damaged_weights(tmp_path, changes)
    for use in (
        read_config,
        load_network,
        lambda p: Desmoker(p, "torch"),
        lambda p: Desmoker(str(p), "torch"),
        lambda p: Desmoker("fast", "torch", weights=p),
    ):
        with pytest.raises(WeightsError, match=says) as error:
            use(path)
        assert str(error.value).startswith(f"{path}: ")


def test_the_good_config_the_damaged_ones_come_from_loads(tmp_path) -> None:
    path = damaged_weights(tmp_path, {})
    desmoker = Desmoker(path, "torch")
    assert desmoker.model_name == "fast" and desmoker.working_short_side == 256
    assert desmoker.process(textured_frame(48, 64)).desmoked.shape == (48, 64, 3)


def test_an_architecture_a_network_does_not_take_is_refused_when_built() -> None:
    """Training configs build networks too (no file): the same check, without a path."""
    for arch, says in [({"depth": 3}, "unknown argument 'depth'"), ([1], "not a table")]:
        with pytest.raises(WeightsError, match=f"do not fit model 'fast': {says}"):
            build_network("fast", arch)
    with pytest.raises(WeightsError, match="use_dark_channel must be true or false, got 1"):
        build_network("paper", {"use_dark_channel": 1})
    with pytest.raises(WeightsError, match="unknown network model 'dcp'"):
        build_network("dcp")


# -- which models run as named -----------------------------------------------------------
def test_runnable_models_follow_the_shipped_weights(tmp_path, monkeypatch) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    monkeypatch.setattr("engine.models.weights.ASSETS_DIR", assets)
    assert runnable_models() == ("dcp",) and shipped_weights("fast") is None
    (assets / "fast.safetensors").symlink_to(REAL_ASSETS / "fast.safetensors")
    assert runnable_models() == ("fast", "dcp")
    assert shipped_weights("fast") == assets / "fast.safetensors"
    (tmp_path / "dcp.safetensors").touch()
    assert shipped_weights("dcp") is None and shipped_weights("../dcp") is None


@pytest.mark.usefixtures("nothing_shipped")
def test_no_shipped_weights_is_an_error_carrying_the_model() -> None:
    with pytest.raises(NoShippedWeights) as error:
        Desmoker("paper", "torch")
    assert error.value.model == "paper" and isinstance(error.value, WeightsError)
    assert "pass weights=W.safetensors" in str(error.value)


@pytest.mark.usefixtures("nothing_shipped")
def test_each_front_end_words_its_own_advice(capsys) -> None:
    from desmoke_app.gui import controls, processor
    from desmoke_app.gui.main import parse_args

    assert main(["info", "--model", "fast"]) == 1
    err = capsys.readouterr().err
    assert "--model fast --weights W.safetensors, or use --model dcp" in err
    assert "weights=" not in err
    with pytest.raises(SystemExit):
        parse_args(["--model", "fast"])
    err = capsys.readouterr().err.splitlines()[-1]
    assert "pass them as --model W.safetensors" in err and err.endswith("or use --model dcp")
    with pytest.raises(ValueError) as error:
        processor.make_desmoker({"model": "fast", "backend": "auto"})
    assert str(error.value) == controls.no_weights_advice("fast")


# -- the command line ------------------------------------------------------------------
CLI_DAMAGE = ["model nope", "model dcp", "arch list", "side text", "minutes text"]


def _one_line_naming(err: str, path: Path) -> bool:
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith(f"desmoke: error: {path}: ")


@pytest.mark.parametrize("damage", CLI_DAMAGE)
def test_cli_commands_refuse_a_damaged_config_in_one_line(tmp_path, capsys, damage) -> None:
    weights = damaged_weights(tmp_path, DAMAGE[damage][0])
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=2, size=(64, 48), fps=12)
    image = tmp_path / "view.png"
    cv2.imwrite(str(image), textured_frame(48, 64))
    before = sorted(tmp_path.iterdir())
    for argv in (
        ["export", str(clip), "-o", str(tmp_path / "out.mp4"), "--model", str(weights)],
        ["export", str(clip), "-o", str(tmp_path / "out.mp4"), "--weights", str(weights)],
        ["evaluate", "--model", str(weights), "--no-real", "--sources", str(image)]
        + ["--out", str(tmp_path / "report")],
        ["export-model", str(weights), "--onnx", str(tmp_path / "out.onnx")],
        ["info", "--model", str(weights)],
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert _one_line_naming(err, weights), (argv, err)
        assert sorted(tmp_path.iterdir()) == before, argv


# -- the app ---------------------------------------------------------------------------
def test_the_app_falls_back_from_remembered_damaged_weights(qtbot, tmp_path, monkeypatch):
    """QA: "processing frame 0 failed: 'nope'" and three black panes. Now, as for weights
    that do not load: a message naming the file, and the shipped model runs instead."""
    from desmoke_app.gui.main_window import MainWindow
    from tests.gui_support import WAIT_MS, make_settings, open_clip

    weights = damaged_weights(tmp_path, DAMAGE["model nope"][0])
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=4, size=(160, 96), fps=25)
    win = MainWindow(make_settings(tmp_path, {"model": str(weights)}))
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: weights.name in win.message_bar.text(), timeout=WAIT_MS)
        message = win.message_bar.text()
        assert "not a network model" in message and "using fast" in message
        assert win.processor_state.model_name == "fast"
        open_clip(qtbot, win, clip)  # all three panes show frame 0
    finally:
        win.shutdown()


@pytest.mark.parametrize("damage", ["arch list", "side text", "model dcp"])
def test_the_app_refuses_damaged_weights_chosen_while_running(
    qtbot, tmp_path, monkeypatch, damage
) -> None:
    """desmoke-app --model W.safetensors, or the Weights file… item: one line naming the
    file, and dcp, which ran, goes on (before: a traceback, 256 px silently, or dcp run
    as if it were the file's model)."""
    from desmoke_app.gui.main_window import MainWindow
    from tests.gui_support import WAIT_MS, make_settings, open_clip

    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))
    weights = damaged_weights(tmp_path, DAMAGE[damage][0])
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=4, size=(160, 96), fps=25)
    win = MainWindow(make_settings(tmp_path))
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: win.processor_state is not None, timeout=WAIT_MS)
        open_clip(qtbot, win, clip)
        win.set_processing(remember=False, model=str(weights))
        qtbot.waitUntil(lambda: weights.name in win.message_bar.text(), timeout=WAIT_MS)
        assert win.message_bar.text().startswith(f"{weights}: ")
        assert win.processor_state.model_name == "dcp"
    finally:
        win.shutdown()
