"""Files with several video streams (a stereo laparoscope, an OR recorder's inputs), end to
end: the stream chosen, its audio in time with it, the numbering users see (the CLI's
--video-stream, the notice, the error); and monochrome video stored with colour planes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import engine.video.file_source as file_source
from desmoke_app.cli import main
from engine.export import export_video
from engine.pipeline import Desmoker
from engine.video import FileSource
from engine.video.file_source import MissingVideoStream, StreamChoice
from tests.clips import index_frame, read_index
from tests.frames import textured_frame, write_video

SIZE = (64, 48)
FPS = 25
SAMPLE_RATE = 8000
#: When the second video stream starts (s); the audio is silent until then, a tone after.
SECOND_STARTS_S = 1.0
AUDIO_S = 4.0


def _video_streams(out: av.container.OutputContainer, sizes) -> list[av.VideoStream]:
    streams = []
    for width, height in sizes:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        streams.append(stream)
    return streams


def _mux_silence_then_tone(out: av.container.OutputContainer) -> None:
    """AAC audio, silent for SECOND_STARTS_S, then a 440 Hz tone to AUDIO_S."""
    stream = out.add_stream("aac", rate=SAMPLE_RATE)
    stream.layout = "mono"
    t = np.arange(int(AUDIO_S * SAMPLE_RATE)) / SAMPLE_RATE
    tone = np.where(t >= SECOND_STARTS_S, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
    for first in range(0, len(t), 1024):
        chunk = tone[first : first + 1024].astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, first
        frame.time_base = Fraction(1, SAMPLE_RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def make_stereo(path: Path, frames: int = 50, sizes=(SIZE, (48, 32))) -> Path:
    """Two video streams, as a stereo laparoscope records: the first from 0 s showing
    indices 0.., the second (another size) from SECOND_STARTS_S showing 100..; audio silent
    until the second starts, a tone after."""
    with av.open(str(path), "w") as out:
        streams = _video_streams(out, sizes)
        starts = (0, round(SECOND_STARTS_S * FPS))
        _mux_silence_then_tone(out)
        for i in range(frames):
            for number, (stream, start) in enumerate(zip(streams, starts, strict=True)):
                rgb = index_frame(i + 100 * number, (stream.width, stream.height))
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = start + i, Fraction(1, FPS)
                out.mux(stream.encode(frame))
        for stream in streams:
            out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def stereo(tmp_path_factory) -> Path:
    return make_stereo(tmp_path_factory.mktemp("streams") / "stereo.mkv")


def loudness(path: Path, start: float, end: float) -> float:
    """RMS of the decoded audio of `path` from `start` to `end` (s of its own time)."""
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    return float(np.sqrt(np.mean(samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)] ** 2)))


def first_original_index(path: Path) -> int:
    """The index shown in the original pane (the left third) of an export's first frame."""
    with av.open(str(path)) as container:
        rgb = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return read_index(rgb[:, : rgb.shape[1] // 3])


# -- the engine ----------------------------------------------------------------------------


def test_the_streams_to_choose_from_are_listed(tmp_path, stereo):
    with FileSource(stereo) as source:
        assert source.stream_choices == (StreamChoice(64, 48, 25.0), StreamChoice(48, 32, 25.0))
    single = write_video(tmp_path / "colour.mp4", [textured_frame(48, 64)] * 3)
    with FileSource(single) as source:
        assert source.stream_choices == (StreamChoice(64, 48, 25.0),)


def test_a_missing_stream_is_numbered_as_the_notice_numbers_them(stereo):
    """The error said "no video stream 2" of a file whose notice names "video stream 2 of
    2": the notice counts from 1, the argument from 0; the error now says both."""
    with pytest.raises(MissingVideoStream) as error:
        FileSource(stereo, video_stream=2)
    assert str(error.value) == (
        f"{stereo}: video_stream=2 asks for video stream 3, but the file has 2 video "
        "streams (video_stream 0 to 1)"
    )
    assert (error.value.number, error.value.count) == (2, 2)


def test_the_notice_about_several_streams_can_say_how_to_switch(stereo):
    with FileSource(stereo, video_stream=1) as source:
        neutral = source.notices[0]
        assert neutral.endswith("desmoke uses video stream 2 of 2; the others are not used")
        assert source.notices_saying("press S") == (f"{neutral} (press S)", *source.notices[1:])


@pytest.mark.parametrize("number", [0, 1])
def test_the_export_audio_is_in_time_with_the_stream_exported(tmp_path, stereo, number):
    """The audio was aligned to the first video stream's start, whichever stream was
    exported: the second stream's export, which starts at 1 s, began with the second of
    silence before it, its sound a second late."""
    out = tmp_path / "out.mp4"
    export_video(stereo, out, Desmoker("dcp"), video_stream=number)
    assert first_original_index(out) == 100 * number
    second_stream = number == 1  # starts with the tone; the first, with the silence
    assert (loudness(out, 0.0, 0.8) > 0.2) is second_stream
    assert loudness(out, 1.2, 1.8) > 0.2


def test_an_export_range_of_the_second_stream_keeps_its_audio_in_time(tmp_path, stereo):
    out = tmp_path / "out.mp4"
    export_video(stereo, out, Desmoker("dcp"), video_stream=1, start=0.4, end=1.2)
    assert first_original_index(out) == 110  # frame 10 of the second stream: 0.4 s
    assert loudness(out, 0.0, 0.7) > 0.2


# -- monochrome video in a colour pixel format ---------------------------------------------


def grey(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)


def test_a_grey_picture_stored_in_yuv420p_gets_the_monochrome_notice(tmp_path):
    """An endoscope's black-and-white mode exported by a generic encoder: yuv420p, its
    chroma all 128. Only a grey pixel format (gray, gray10le) was noticed."""
    path = write_video(tmp_path / "bw.mp4", [grey(textured_frame(48, 64, s)) for s in range(3)])
    with FileSource(path) as source:
        assert source.pixel_format == "yuv420p"
        assert source.notices == (
            "bw.mp4: a monochrome video (yuv420p without colour in its first frame): desmoke's "
            "models learned on colour video and may darken it; judge the result against the "
            "original pane",
        )


def test_colour_and_dark_first_frames_get_no_monochrome_notice(tmp_path):
    """A colour video is no monochrome one; nor is one whose first frame is dark (a fade-in,
    a recorder's caption on black): a dark frame has no colour in a colour video too."""
    colour = write_video(tmp_path / "colour.mp4", [textured_frame(48, 64, s) for s in range(3)])
    caption = np.zeros((48, 64, 3), np.uint8)
    caption[20:26, 8:40] = 235  # white text on black
    dark_start = write_video(tmp_path / "dark.mp4", [caption, grey(textured_frame(48, 64))])
    for path in (colour, dark_start):
        with FileSource(path) as source:
            assert source.notices == (), path.name


def test_the_chroma_check_costs_the_first_frame_only(tmp_path, monkeypatch):
    checked = []
    real = file_source.looks_monochrome
    monkeypatch.setattr(file_source, "looks_monochrome", lambda f: checked.append(f) or real(f))
    path = write_video(tmp_path / "bw.mp4", [grey(textured_frame(48, 64, s)) for s in range(6)])
    with FileSource(path) as source:
        assert len(list(source.frames())) == 6
        source.seek_frame(3)
    assert len(checked) == 1


# -- the command line ----------------------------------------------------------------------


def test_export_video_stream_picks_the_stream_counted_from_1(tmp_path, stereo, capsys):
    out = tmp_path / "out.mp4"
    argv = ["export", str(stereo), "-o", str(out), "--model", "dcp", "--video-stream", "2"]
    assert main(argv) == 0, capsys.readouterr().err
    assert first_original_index(out) == 100
    assert loudness(out, 0.0, 0.8) > 0.2
    err = capsys.readouterr().err
    assert (
        "desmoke: warning: stereo.mkv: the file has 2 video streams (a stereo recording?): "
        "desmoke uses video stream 2 of 2; the others are not used (--video-stream N exports "
        "another)"
    ) in err


def test_export_says_how_to_pick_another_stream(tmp_path, stereo, capsys):
    assert main(["export", str(stereo), "-o", str(tmp_path / "o.mp4"), "--model", "dcp"]) == 0
    err = capsys.readouterr().err
    assert "uses video stream 1 of 2; the others are not used (--video-stream N exports" in err


def test_export_of_a_stream_the_file_lacks_is_one_line_in_the_options_numbers(
    tmp_path, stereo, capsys
):
    out = tmp_path / "out.mp4"
    argv = ["export", str(stereo), "-o", str(out), "--model", "dcp", "--video-stream", "3"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"desmoke: error: {stereo}: --video-stream 3: the file has 2 video streams "
        "(--video-stream 1 to 2)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left behind


@pytest.mark.parametrize("wrong", ["0", "-1", "two", "1.5"])
def test_video_stream_is_a_whole_number_from_1(stereo, capsys, wrong):
    with pytest.raises(SystemExit) as stop:
        main(["export", str(stereo), "--model", "dcp", "--video-stream", wrong])
    assert stop.value.code == 2
    assert "argument --video-stream" in capsys.readouterr().err


def test_export_help_says_how_streams_are_numbered(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--video-stream N which video stream of a file that has several" in help_text
    assert "counted from 1" in help_text


def test_the_training_tools_say_which_stream_they_read(stereo, caplog) -> None:
    """evaluate --real, the training data and synth-smoke read a file's first video stream:
    they say so, as the export does, rather than score or train on one eye silently."""
    from training.data import _video_frames
    from training.evaluate import read_video_frames

    with caplog.at_level("WARNING"):
        read_video_frames(stereo, 2)
    assert "uses video stream 1 of 2" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        list(_video_frames(stereo, step=10))
    assert "uses video stream 1 of 2" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        list(_video_frames(stereo, step=10, warn=False))
    assert "video stream" not in caplog.text
