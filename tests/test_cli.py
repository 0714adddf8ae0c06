"""The `desmoke` command line: info, devices, export, and its error handling."""

from __future__ import annotations

import av
import pytest

from desmoke_app.cli import main
from engine.video import Mp4Writer
from tests.backend_failures import lost_device
from tests.clips import make_index_clip
from tests.frames import textured_frame


def test_info_lists_backends_and_model(capsys) -> None:
    assert main(["info", "--model", "dcp"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime  available" in out and "model dcp" in out


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


@pytest.mark.parametrize(
    "argv,message",
    [
        (["export", "missing.mp4", "--model", "dcp"], "missing.mp4"),
        (["export", "x.mp4", "--model", "nope"], "unknown model"),
        (["export", "x.mp4", "--model", "dcp", "--start", "3", "--end", "1"], "--end"),
        (["export", "x.mp4", "--model", "dcp", "--crf", "60"], "--crf must be 0-51"),
    ],
)
def test_export_errors_are_one_line(argv, message, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.glob("*_desmoked.mp4"))


def test_export_to_unwritable_path_leaves_nothing(tmp_path, capsys) -> None:
    clip = make_index_clip(tmp_path / "clip.mp4", n_frames=4, size=(64, 48), fps=12)
    target = tmp_path / "no" / "such" / "folder" / "out.mp4"
    assert main(["export", str(clip), "-o", str(target), "--model", "dcp"]) == 1
    assert "out.mp4" in capsys.readouterr().err
    assert not target.exists()


def test_ctrl_c_mid_export_leaves_no_file(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    clip = make_index_clip(tmp_path / "long.mp4", n_frames=600, size=(320, 192), fps=25)
    target = tmp_path / "out.mp4"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "desmoke_app.cli",
            "export",
            str(clip),
            "-o",
            str(target),
            "--model",
            "dcp",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    # Interrupt once the export is under way (its first progress output has appeared).
    def partial_outputs() -> list:
        return [p for p in tmp_path.iterdir() if p.name != "long.mp4"]

    deadline = time.monotonic() + 60
    while not partial_outputs() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert partial_outputs() and not target.exists(), "the export ended before the interrupt"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not partial_outputs()


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
