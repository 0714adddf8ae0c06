"""The `desmoke` command line: info, devices, export, and its error handling."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import av
import pytest

from desmoke_app.cli import main
from engine.video import Mp4Writer
from tests.backend_failures import lost_device
from tests.clips import corrupt_clip, make_index_clip
from tests.frames import textured_frame


def test_info_lists_backends_and_model(capsys) -> None:
    assert main(["info", "--model", "dcp"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime  available" in out and "model dcp" in out


def test_info_sums_up_the_weights_and_gives_all_on_request(capsys) -> None:
    assert main(["info", "--model", "fast", "--backend", "onnxruntime"]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith("weights: format") and "validation PSNR" in summary
    assert main(["info", "--model", "fast", "--backend", "onnxruntime", "--provenance"]) == 0
    out = capsys.readouterr().out
    provenance = json.loads(out[out.index("{") :])
    assert provenance["training"]["steps"] > 0 and "val" in provenance["metrics"]


def test_version_is_the_package_version(capsys) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"desmoke {version('desmoke')}"


def test_devices_never_fails(capsys) -> None:
    assert main(["devices"]) == 0
    assert capsys.readouterr().out.strip()


def test_export_writes_a_side_by_side_clip(tmp_path, capsys) -> None:
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=12, size=(64, 48), fps=12)
    out = tmp_path / "out.mp4"
    code = main(["export", str(clip), "-o", str(out), "--model", "dcp", "--labels"])
    assert code == 0, capsys.readouterr().err
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert (stream.width, stream.height) == (3 * 64, 48)
    assert frames == 12
    assert f"wrote {out}" in capsys.readouterr().out


def test_a_cut_short_input_is_written_with_a_warning(tmp_path, capsys, caplog) -> None:
    whole = make_index_clip(tmp_path / "whole.mp4", n_frames=100, size=(64, 48), fps=25)
    cut = corrupt_clip(whole, tmp_path / "cut.mp4", keep=0.5, flips=0)  # states 4 s
    assert main(["export", str(cut), "-o", str(tmp_path / "out.mp4"), "--model", "dcp"]) == 0
    warning = capsys.readouterr().err.strip().splitlines()[-1]
    assert warning.startswith("desmoke: warning: cut.mp4: the video ends at")
    assert "cut short" in warning
    assert main(["synth-smoke", str(cut), str(tmp_path / "smoky.mp4")]) == 0
    assert any("cut short" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_export_goes_on_when_the_backend_stops_mid_run(tmp_path, monkeypatch, caplog) -> None:
    """A backend that stops working mid-export (a lost GPU, say): the next one finishes the
    file, and the warning says which took over (the CLI's logger prints it)."""
    from engine.backends.torch_backend import TorchBackend

    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(TorchBackend, "run", lost_device)
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=6, size=(64, 48), fps=12)
    out = tmp_path / "out.mp4"
    code = main(["export", str(clip), "-o", str(out), "--model", "fast", "--backend", "torch"])
    assert code == 0 and out.is_file()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("torch stopped working" in w and "onnxruntime" in w for w in warnings)


def test_export_several_inputs_into_a_folder_with_one_bad(tmp_path, capsys) -> None:
    good = make_index_clip(tmp_path / "good.mp4", n_frames=6, size=(64, 48), fps=12)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    folder = tmp_path / "out"
    folder.mkdir()
    code = main(
        ["export", str(bad), str(good), "-o", str(folder), "--model", "dcp", "--layout", "2up"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "bad.mp4" in err and "Traceback" not in err
    assert [p.name for p in folder.iterdir()] == ["good_desmoked.mp4"]


def test_export_never_writes_over_its_source(tmp_path, monkeypatch, capsys) -> None:
    """The comparison would replace the surgery video: refused, the source untouched."""
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=4, size=(64, 48), fps=12)
    before = clip.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(clip), "-o", "./clip.mp4", "--model", "dcp"]) == 1
    assert "is the source video" in capsys.readouterr().err
    assert clip.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_export_quality_reaches_the_encoder(tmp_path, capsys) -> None:
    clip = tmp_path / "clip.mp4"
    with Mp4Writer(clip, fps=12, size=(160, 96), crf=0) as writer:  # fine texture to keep
        for seed in range(12):
            writer.write_image(textured_frame(96, 160, seed=seed))
    sizes = {}
    for crf in (8, 40):
        out = tmp_path / f"crf{crf}.mp4"
        assert main(["export", str(clip), "-o", str(out), "--model", "dcp", "--crf", str(crf)]) == 0
        sizes[crf] = out.stat().st_size
    assert sizes[8] > 2 * sizes[40], sizes  # lower crf: more detail kept, a larger file


def test_inputs_that_would_share_an_output_are_refused(tmp_path, capsys) -> None:
    """a.mp4 and a.avi both make a_desmoked.mp4: the second would replace the first."""
    for name in ("a.mp4", "sub/a.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        make_index_clip(tmp_path / name, n_frames=4, size=(64, 48), fps=12)
    folder = tmp_path / "out"
    folder.mkdir()
    argv = ["export", str(tmp_path / "a.mp4"), str(tmp_path / "sub/a.mp4"), "-o", str(folder)]
    assert main([*argv, "--model", "dcp"]) == 1
    assert "would both be written to" in capsys.readouterr().err
    assert not list(folder.iterdir())


def _clips(folder, *names: str) -> list:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        make_index_clip(folder / name, n_frames=4, size=(64, 48), fps=12)
    return [folder / name for name in names]


def _contents(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "names, output",
    [
        (["a.mp4", "a_desmoked.mp4"], None),  # a's output is the user's a_desmoked.mp4
        (["a_desmoked.mp4", "a.mp4"], None),  # exported first, then replaced
        (["a.mp4", "out/a_desmoked.mp4"], "out"),
    ],
)
def test_an_output_that_is_another_input_is_refused(
    names, output, tmp_path, monkeypatch, capsys
) -> None:
    """The first export wrote chain/a_desmoked.mp4, an input still waiting, and the second
    then read the new file: refused before any export, every file as it was."""
    monkeypatch.chdir(tmp_path)
    _clips(tmp_path, *names)
    before = _contents(tmp_path)
    argv = ["export", *names, *(["-o", output] if output else []), "--model", "dcp"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"desmoke: error: {Path(output or '.', 'a_desmoked.mp4')}: is also an input, which the "
        f"export of a.mp4 would replace; give -o another folder"
    ]
    assert "desmoke: model" not in out
    assert _contents(tmp_path) == before


@pytest.mark.parametrize("spelling", ["a.mp4", "./a.mp4", "absolute", "link.mp4"])
def test_an_input_given_twice_is_refused(spelling, tmp_path, monkeypatch, capsys) -> None:
    """It was exported twice (the second replacing the first), or refused as two inputs
    "both written to" one file: "rename one" is no advice for one file."""
    monkeypatch.chdir(tmp_path)
    _clips(tmp_path, "a.mp4")
    (tmp_path / "link.mp4").symlink_to("a.mp4")
    (tmp_path / "out").mkdir()
    again = str(tmp_path / "a.mp4") if spelling == "absolute" else spelling
    assert main(["export", "a.mp4", again, "-o", "out", "--model", "dcp"]) == 1
    also = "" if Path(again) == Path("a.mp4") else f" (also as {again})"  # ./a.mp4 is a.mp4
    assert capsys.readouterr().err.splitlines() == [
        f"desmoke: error: a.mp4 is given twice{also}: give each input once"
    ]
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "inputs, output, message",
    [
        (["a.mp4", "b.mp4"], "missing", "missing: output folder does not exist"),
        (["a.mp4"], "newdir/", "newdir/: output folder does not exist"),
        (["a.mp4", "b.mp4"], "x.mp4", "x.mp4: with several inputs, -o must be a folder"),
        (["a.mp4", "b.mp4"], "file", "file: with several inputs, -o must be a folder"),
        (["a.mp4"], "file/", "file: is a file, not a folder"),
    ],
)
def test_an_unusable_output_folder_is_said_once(
    inputs, output, message, tmp_path, monkeypatch, capsys
) -> None:
    """Said once before any export, not once per input; a trailing "/" names a folder (it
    was taken for a file: "the output is an MP4 file; name it .mp4")."""
    monkeypatch.chdir(tmp_path)
    _clips(tmp_path, "a.mp4", "b.mp4")
    (tmp_path / "file").write_text("keep me")
    before = _contents(tmp_path)
    assert main(["export", *inputs, "-o", output, "--model", "dcp"]) == 1
    assert capsys.readouterr().err.splitlines() == [f"desmoke: error: {message}"]
    assert _contents(tmp_path) == before


def test_a_trailing_slash_exports_into_the_folder(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    _clips(tmp_path, "a.mp4")
    (tmp_path / "out").mkdir()
    assert main(["export", "a.mp4", "-o", "out/", "--model", "dcp"]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_desmoked.mp4"]


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "--model", "dcp"],  # found when stdout is flushed at exit
        ["info", "--model", "fast", "--backend", "onnxruntime", "--provenance"],  # the QA's
    ],
)
def test_a_closed_stdout_ends_quietly(argv) -> None:
    """`desmoke info --provenance | head -40`: the reader goes away. No traceback (it was
    BrokenPipeError), and the exit code of a SIGPIPE, as other commands in a pipeline."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "desmoke_app.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # before anything is written: every write fails
    err = process.stderr.read()
    assert process.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize(
    "argv",
    [["train", "--config", "c.toml", "-o", "runs/x"], ["evaluate", "-o", "runs/x"]],
)
def test_output_folders_take_dash_o_as_export_does(argv) -> None:
    from desmoke_app.cli import build_parser

    assert build_parser().parse_args(argv).out == Path("runs/x")


@pytest.mark.parametrize(
    "given", [["--real-frames", "3"], ["--real-frames", "10"], ["--real", "r"]]
)
def test_evaluate_refuses_real_smoke_options_with_no_real(given, tmp_path, capsys) -> None:
    """--no-real silently ignored --real-frames N (also N = the default, 10)."""
    out = tmp_path / "ev"
    argv = ["evaluate", "--model", "dcp", "--no-real", *given, "--sources", "x.png", "-o"]
    assert main([*argv, str(out)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"desmoke: error: --no-real skips the real-smoke part: drop {given[0]}, or --no-real"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["export", "missing.mp4", "--model", "dcp"], "missing.mp4"),
        (["export", "x.mp4", "--model", "nope"], "unknown model"),
        (["export", "x.mp4", "--model", "dcp", "--start", "3", "--end", "1"], "--end"),
        (["export", "x.mp4", "--model", "dcp", "--weights", "w.safetensors"], "takes no weights"),
        (
            ["export", "x.mp4", "--model", "fast.onnx"],
            "is an ONNX export; give the .safetensors weights",
        ),
        (["export", "x.mp4", "--weights", "fast.onnx"], ".safetensors weights"),
        (["info", "--model", "a.safetensors", "--weights", "b.safetensors"], "already a weights"),
    ],
)
def test_export_errors_are_one_line(argv, message, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) != 0
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in err
    assert "desmoke: model" not in out  # the error comes alone, not after the model's banner
    assert not list(tmp_path.glob("*_desmoked.mp4"))


def test_export_to_unwritable_path_leaves_nothing(tmp_path, capsys) -> None:
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=4, size=(64, 48), fps=12)
    target = tmp_path / "no" / "such" / "folder" / "out.mp4"
    assert main(["export", str(clip), "-o", str(target), "--model", "dcp"]) == 1
    assert "out.mp4" in capsys.readouterr().err
    assert not target.exists()


@pytest.mark.parametrize(
    "signal_name, code",
    [
        ("SIGINT", 130),
        ("SIGTERM", 143),
        pytest.param(
            "SIGHUP",
            129,
            marks=pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here"),
        ),
    ],
)
def test_stop_signal_mid_export_leaves_no_file(signal_name, code, tmp_path) -> None:
    """Ctrl-C, `kill` and a closed terminal: the same cleanup, exit code 128 + signal."""
    import os
    import subprocess
    import sys

    clip = make_index_clip(tmp_path / "long.mp4", n_frames=600, size=(320, 192), fps=25)
    target = tmp_path / "out.mp4"
    argv = ["export", str(clip), "-o", str(target), "--model", "dcp"]
    process = subprocess.Popen(
        [sys.executable, "-m", "desmoke_app.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    # Interrupt once frames are being written (the progress bar has appeared): before
    # that, engine.pipeline.export_video has a moment where its writer is not yet guarded.
    shown = ""
    while "frame/s" not in shown and (char := process.stderr.read(1)):
        shown += char
    partial_outputs = [p for p in tmp_path.iterdir() if p.name != "long.mp4"]
    assert partial_outputs and not target.exists(), "the export ended before the interrupt"
    process.send_signal(getattr(signal, signal_name))
    err = process.stderr.read()
    assert process.wait(timeout=60) == code, err
    assert err.endswith("desmoke: interrupted\n") and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == [clip]


def test_ctrl_c_while_the_command_loads_is_one_line(monkeypatch, capsys) -> None:
    """Ctrl-C while torch is imported (building the parser imports the commands)."""
    from desmoke_app import cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        code = main(["info"])
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped main() (a traceback for the user)")
    assert code == 130
    assert capsys.readouterr().err == "desmoke: interrupted\n"


def test_a_write_error_is_printed_after_the_progress_bar(tmp_path, monkeypatch, capsys) -> None:
    """A full disk mid-export: the bar is closed first, the error is the last line, alone."""
    import errno

    from engine.video.writer import Mp4Writer

    encode = Mp4Writer._encode

    def disk_full_after_three_frames(self, frame) -> None:
        if self.frames_written == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        encode(self, frame)

    monkeypatch.setattr(Mp4Writer, "_encode", disk_full_after_three_frames)
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=12, size=(64, 48), fps=12)
    out = tmp_path / "out.mp4"
    assert main(["export", str(clip), "-o", str(out), "--model", "dcp"]) == 1
    err = capsys.readouterr().err
    assert "frame" in err  # the bar was drawn
    assert err.endswith(f"\ndesmoke: error: {out}: writing failed (No space left on device)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_export_of_a_damaged_clip_goes_on_and_reports_skips(tmp_path, capsys) -> None:
    from tests.clips import corrupt_clip

    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=48, fps=25, audio=True)
    damaged = corrupt_clip(clip, tmp_path / "damaged.mp4", keep=0.6, flips=40, seed=0)
    out = tmp_path / "out.mp4"
    assert main(["export", str(damaged), "-o", str(out), "--model", "dcp"]) == 0
    printed = capsys.readouterr().out
    assert "undecodable frames skipped" in printed
    with av.open(str(out)) as container:
        assert 0 < sum(1 for _ in container.decode(video=0)) < 48


def test_help_lists_every_command(capsys) -> None:
    from desmoke_app.cli import COMMANDS, build_parser

    build_parser().print_help()
    listed = capsys.readouterr().out
    assert all(name.replace("_", "-") in listed for name in COMMANDS)


def test_a_model_without_weights_is_refused_not_replaced(tmp_path, monkeypatch, capsys) -> None:
    """--model paper with no paper weights shipped: an error that says what can run, rather
    than a dcp export named as if it were paper's."""
    from engine.models import weights

    shipped = weights.shipped_weights
    monkeypatch.setattr(weights, "shipped_weights", lambda m: None if m == "paper" else shipped(m))
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=2, size=(64, 48), fps=12)
    assert main(["export", str(clip), "--model", "paper"]) == 1
    err = capsys.readouterr().err
    assert "--model paper --weights W.safetensors" in err and "dcp" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--strength", "5"], "argument --strength: must be from 0 to 1, got 5"),
        (["--strength", "-1"], "argument --strength: must be from 0 to 1"),
        (["--strength", "nan"], "argument --strength: expected a finite number"),
        (["--working-size", "0"], "argument --working-size: must be 64-2160, got 0"),
        (["--working-size", "100000"], "argument --working-size: must be 64-2160"),
        (["--patch", "0"], "argument --patch: must be an odd number 3-61, got 0"),
        (["--patch", "4"], "argument --patch: must be an odd number 3-61, got 4"),
        (["--crf", "60"], "argument --crf: must be 0-51, got 60"),
        (["--crf", "-1"], "argument --crf: must be 0-51"),
        (["--start", "nan"], "argument --start: expected a finite number"),
        (["--start", "-2"], "argument --start: must be 0 s or more"),
    ],
)
def test_out_of_range_options_are_refused(argv, message, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "x.mp4", "--model", "dcp", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_one_frame_is_singular(tmp_path, capsys) -> None:
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=1, size=(64, 48), fps=12)
    assert main(["export", str(clip), "-o", str(tmp_path / "out.mp4"), "--model", "dcp"]) == 0
    assert "(1 frame in " in capsys.readouterr().out


def test_evaluate_refuses_a_file_as_its_output_folder(tmp_path, capsys) -> None:
    taken = tmp_path / "text.mp4"
    taken.write_text("keep me")
    argv = ["evaluate", "--model", "dcp", "--no-real", "--sources", "x.png", "--out", str(taken)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"--out {taken}: is a file; --out takes a folder" in err and "Errno" not in err
    assert taken.read_text() == "keep me"


@pytest.mark.parametrize("argv", [["-v", "info"], ["info", "-v"], ["info", "--verbose"]])
def test_verbose_goes_before_or_after_the_command(argv) -> None:
    from desmoke_app.cli import build_parser

    assert build_parser().parse_args(argv).verbose


def test_every_option_has_help() -> None:
    from desmoke_app.cli import build_parser

    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.choices and a.dest == "command"]
    missing = [
        f"{name} {action.option_strings[0]}"
        for name, subparser in subparsers.choices.items()
        for action in subparser._actions
        if action.option_strings and not action.help
    ]
    assert not missing


def test_the_export_progress_bar_ends_full_when_the_estimate_was_high(capsys) -> None:
    """A variable frame rate (or a cut-short file) makes the frame count an overestimate:
    the bar of a finished export ended at 66% (50/76)."""
    from desmoke_app.commands.export import _ProgressBar

    bar = _ProgressBar("vfr.mp4")
    for done in range(1, 51):
        bar(done, 76)
    bar.complete()
    bar.close()
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "100%" in final and "50/50" in final


# ----------------------------------------------------------------------------- wildcards
# cmd and PowerShell pass `*.mp4` on unexpanded; so does a POSIX shell where it matches
# nothing. Calling main() directly passes the argument as those shells do.


def test_export_expands_a_wildcard_the_shell_left(tmp_path, monkeypatch, capsys) -> None:
    """QA: on Windows `desmoke export *.mp4` said "*.mp4: no such file"."""
    monkeypatch.chdir(tmp_path)
    _clips(tmp_path, "b.mp4", "a.mp4")
    (tmp_path / "a.mp4.txt").write_text("not matched")
    (tmp_path / "out").mkdir()
    assert main(["export", "*.mp4", "-o", "out", "--model", "dcp"]) == 0, capsys.readouterr()
    written = [line for line in capsys.readouterr().out.splitlines() if "wrote" in line]
    assert [line.split()[2] for line in written] == [
        str(Path("out", "a_desmoked.mp4")),  # in name order
        str(Path("out", "b_desmoked.mp4")),
    ]


@pytest.mark.parametrize(
    "argv, written",
    [
        (["export", "*.mkv", "--model", "dcp"], []),
        (["export", "a.mp4", "clip[0-9].mp4", "--model", "dcp"], ["a_desmoked.mp4"]),
        (["evaluate", "--model", "dcp", "--no-real", "--sources", "a.mp4", "*.png"], []),
    ],
)
def test_a_wildcard_matching_no_file_is_missing_as_a_shell_leaves_it(
    argv, written, tmp_path, monkeypatch, capsys
) -> None:
    """Left as given, as bash leaves it: reported missing, the other inputs still exported."""
    monkeypatch.chdir(tmp_path)
    _clips(tmp_path, "a.mp4")
    assert main(argv) == 1
    pattern = next(arg for arg in argv if "*" in arg or "[" in arg)
    assert capsys.readouterr().err.endswith(f"desmoke: error: {pattern}: no such file\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.mp4", *written])


def test_a_file_named_like_a_wildcard_is_that_file(tmp_path, monkeypatch) -> None:
    from desmoke_app.commands.common import expand_wildcards

    monkeypatch.chdir(tmp_path)
    _clips(tmp_path, "take [2].mp4", "take 2.mp4", "take 3.mp4")
    assert expand_wildcards([Path("take [2].mp4")]) == [Path("take [2].mp4")]
    assert expand_wildcards([Path("take [0-9].mp4")]) == [Path("take 2.mp4"), Path("take 3.mp4")]
    folder = str(tmp_path)  # an absolute pattern keeps its folder
    assert expand_wildcards([Path(folder, "take ?.mp4")]) == [
        tmp_path / "take 2.mp4",
        tmp_path / "take 3.mp4",
    ]


def test_evaluate_expands_a_wildcard_in_its_sources(tmp_path, monkeypatch, capsys) -> None:
    from tests.test_training_data import write_image

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))
    for seed, name in enumerate(["b.png", "a.png"]):
        write_image(tmp_path / name, textured_frame(48, 64, seed))
    argv = ["evaluate", "--model", "dcp", "--no-real", "--sources", "*.png", "--out", "report"]
    assert main(argv) == 0, capsys.readouterr().err
    info = json.loads((tmp_path / "report" / "evaluation.json").read_text())["synthetic_info"]
    assert info["sources"] == ["a.png", "b.png"]


def test_export_passes_on_what_the_source_says_about_itself(tmp_path, capsys) -> None:
    """A grey video exports, with FileSource's notice (the models darken it) on stderr."""
    grey = make_index_clip(tmp_path / "grey.mkv", 4, codec="ffv1", pix_fmt="gray")
    out = tmp_path / "out.mp4"
    assert main(["export", str(grey), "-o", str(out), "--model", "dcp"]) == 0
    assert out.is_file()
    err = capsys.readouterr().err
    assert "desmoke: warning: grey.mkv: a monochrome video (gray)" in err


def test_a_start_past_the_end_says_where_the_video_ends(tmp_path, capsys) -> None:
    """--start beyond the video was "no decodable frame in the range asked for"."""
    clip = make_index_clip(tmp_path / "short.mp4", 12)  # 0.48 s at 25 fps
    out = tmp_path / "out.mp4"
    assert main(["export", str(clip), "-o", str(out), "--model", "dcp", "--start", "5"]) == 1
    assert (
        "the range starts at 5 s, at or after the video's end (0.48 s)" in capsys.readouterr().err
    )
    assert not out.exists()


def test_weights_alone_run_the_model_they_hold(tmp_path, capsys) -> None:
    """QA: `desmoke info --weights paper.safetensors` refused ("holds a 'paper' model,
    not 'fast'"): without --model, a weights file runs the model it holds."""
    from engine.models import build_network, default_config, save_weights

    weights = save_weights(
        tmp_path / "paper.safetensors",
        build_network("paper", {"ngf": 4}),
        default_config("paper", {"ngf": 4}),
    )
    assert main(["info", "--weights", str(weights), "--backend", "torch"]) == 0, (
        capsys.readouterr().err
    )
    assert "model paper" in capsys.readouterr().out
    assert main(["info", "--model", "fast", "--weights", str(weights)]) == 1
    assert "'paper'" in capsys.readouterr().err  # an explicit --model is still checked
