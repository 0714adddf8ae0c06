"""Pane layout and the side-by-side MP4 writer (H.264, faststart, audio, atomic output)."""

from __future__ import annotations

import re
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from engine.dark_channel import dark_channel
from engine.video import (
    LAYOUTS,
    FileSource,
    Mp4Writer,
    SideBySideWriter,
    VideoWriteError,
    compose_panes,
    composed_size,
)
from engine.video import writer as writer_module
from engine.video.writer import SOURCE_TIME_BASE
from tests.clips import index_frame, make_index_clip, read_index


def panes(index: int, size=(64, 48)):
    original = index_frame(index, size)
    return original, dark_channel(original), 255 - original


# --- layout ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "layout", "expected"),
    [
        ((64, 48), "3up", (192, 48)),
        ((64, 48), "2up", (128, 48)),
        ((64, 48), "vertical", (64, 144)),
        ((33, 65), "3up", (102, 66)),  # each 33x65 pane padded to 34x66 for yuv420p
        ((33, 65), "2up", (68, 66)),
        ((33, 65), "vertical", (34, 198)),
    ],
)
def test_composed_size(size, layout, expected):
    assert composed_size(*size, layout) == expected
    image = compose_panes(*panes(5, size), layout=layout)
    assert image.shape == (expected[1], expected[0], 3) and image.dtype == np.uint8


def test_an_image_of_odd_panes_has_no_seams():
    """A snapshot is a PNG, not 4:2:0 video: its odd panes touch (a review found the even
    cells' black lines between them)."""
    original, dark, desmoked = panes(5, (33, 65))
    assert composed_size(33, 65, "3up", even_cells=False) == (99, 65)
    image = compose_panes(original, dark, desmoked, even_cells=False)
    assert image.shape == (65, 99, 3)
    assert np.array_equal(image[:, 33:66], np.repeat(dark[..., None], 3, axis=2))
    assert np.array_equal(image[:, 66:], desmoked)


def test_panes_are_placed_in_order():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (48, 64, 3), np.uint8)
    dark = rng.integers(0, 256, (48, 64), np.uint8)
    desmoked = rng.integers(0, 256, (48, 64, 3), np.uint8)
    three = compose_panes(original, dark, desmoked)
    assert np.array_equal(three[:, :64], original)
    assert np.array_equal(three[:, 64:128], np.repeat(dark[:, :, None], 3, axis=2))
    assert np.array_equal(three[:, 128:], desmoked)
    two = compose_panes(original, dark, desmoked, layout="2up")
    assert np.array_equal(two[:, 64:], desmoked)
    tall = compose_panes(original, dark, desmoked, layout="vertical")
    assert np.array_equal(tall[96:], desmoked)
    # Odd panes: each in an even cell, padded black (right, bottom), at even offsets.
    odd = compose_panes(original[:47, :63], dark[:47, :63], desmoked[:47, :63])
    assert odd.shape == (48, 192, 3)
    assert not odd[47:].any() and not odd[:, 63::64].any()  # black padding
    assert np.array_equal(odd[:47, 64:127], np.repeat(dark[:47, :63, None], 3, axis=2))
    assert np.array_equal(odd[:47, 128:191], desmoked[:47, :63])
    odd_tall = compose_panes(original[:47, :63], dark[:47, :63], desmoked[:47, :63], "vertical")
    assert odd_tall.shape == (144, 64, 3)
    assert not odd_tall[47::48].any() and not odd_tall[:, 63:].any()
    assert np.array_equal(odd_tall[48:95, :63], np.repeat(dark[:47, :63, None], 3, axis=2))


def test_labels_draw_on_a_dark_box_without_touching_inputs():
    original = np.full((120, 160, 3), 200, np.uint8)
    dark = np.full((120, 160), 200, np.uint8)
    plain = compose_panes(original, dark, original)
    labelled = compose_panes(original, dark, original, labels=True)
    assert (original == 200).all() and (dark == 200).all()
    for x in (0, 160, 320):  # each pane's top-left corner: darkened box with light text
        corner = labelled[:14, x : x + 30]
        assert (corner < 100).mean() > 0.5
        assert (corner[(corner > 60).all(axis=2)] > 120).any()
    assert np.array_equal(labelled[60:], plain[60:])  # the rest of the panes is untouched


@pytest.mark.parametrize("layout", ["3up", "vertical"])
def test_the_grey_pane_takes_no_colour_from_its_neighbours(tmp_path, layout):
    """yuv420p shares one chroma sample among 2x2 pixels: an odd pane at an odd offset (or a
    chroma filter reaching past its 2x2 block) gave the grey pane's edge the colour beside
    it (a deviation of 51 at 333x517)."""
    size = (33, 25)
    red = np.zeros((size[1], size[0], 3), np.uint8)
    red[..., 0] = 255
    grey = np.full(size[::-1], 128, np.uint8)
    blue = red[..., ::-1].copy()
    out = tmp_path / "grey.mp4"
    with SideBySideWriter(out, fps=25, frame_size=size, layout=layout, crf=0) as writer:
        writer.write(red, grey, blue)
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
    is_grey = (compose_panes(red, grey, blue, layout) == 128).all(axis=2)
    height, width = is_grey.shape
    shares_grey = is_grey.reshape(height // 2, 2, width // 2, 2).any(axis=(1, 3))
    for plane in frame.planes[1:]:
        chroma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size).astype(int)
        assert np.abs(chroma[: height // 2, : width // 2][shares_grey] - 128).max() <= 1


def test_bad_layout_and_mismatched_panes():
    original, dark, desmoked = panes(1)
    with pytest.raises(ValueError, match="layout"):
        compose_panes(original, dark, desmoked, layout="4up")
    with pytest.raises(ValueError, match="dark_channel"):
        compose_panes(original, dark[:10], desmoked)
    assert LAYOUTS == ("3up", "2up", "vertical")


# --- writer ---------------------------------------------------------------------------


def write_clip(path, n=10, size=(64, 48), **options) -> SideBySideWriter:
    with SideBySideWriter(path, fps=25, frame_size=size, **options) as writer:
        for i in range(n):
            writer.write(*panes(i, size))
    return writer


def test_writes_h264_yuv420p_faststart_mp4(tmp_path):
    out = tmp_path / "out.mp4"
    writer = write_clip(out, n=10)
    assert writer.frames_written == 10
    assert writer.encoder_name in writer_module.AUTO_ENCODERS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temp left
    data = out.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # +faststart: index first
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (192, 48)
        assert stream.average_rate == 25 and stream.frames == 10
        assert not container.streams.audio
    with FileSource(out) as source:
        frames = list(source.frames())
    assert [read_index(f.rgb[:, :64]) for f in frames] == list(range(10))
    assert [read_index(255 - f.rgb[:, 128:]) for f in frames] == list(range(10))
    first_original = index_frame(0, (64, 48)).astype(int)
    assert np.abs(frames[0].rgb[:, :64].astype(int) - first_original).mean() < 3  # colours kept


@pytest.mark.parametrize("layout", ["2up", "vertical"])
def test_layouts_and_odd_pane_size(tmp_path, layout):
    out = tmp_path / "odd.mp4"
    write_clip(out, n=4, size=(33, 65), layout=layout, labels=True)
    with FileSource(out) as source:
        assert (source.width, source.height) == composed_size(33, 65, layout)
        assert source.frame_count == 4


def test_fractional_frame_rate_is_kept_exact(tmp_path):
    out = tmp_path / "ntsc.mp4"
    with SideBySideWriter(out, fps=30000 / 1001, frame_size=(64, 48)) as writer:
        for i in range(3):
            writer.write(*panes(i))
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)


def test_frames_keep_the_times_they_are_written_at(tmp_path):
    """A recording that dropped frames: each frame is shown when it was seen, and a time
    that would not move forward is moved one tick on (never two frames at one time)."""
    out = tmp_path / "vfr.mp4"
    times = [0.0, 0.04, 0.2, 0.2, 0.72, 1.0]
    with SideBySideWriter(out, fps=25, frame_size=(64, 48)) as writer:
        for i, time in enumerate(times):
            writer.write(*panes(i), time=time)
    with av.open(str(out)) as container:
        shown = [frame.time for frame in container.decode(video=0)]
    assert shown == pytest.approx([0.0, 0.04, 0.2, 0.24, 0.72, 1.0], abs=1e-6)
    # In milliseconds, frames closer than a frame apart keep their own times.
    with SideBySideWriter(out, fps=25, frame_size=(64, 48), time_base=Fraction(1, 1000)) as w:
        for i, time in enumerate([0.0, 0.005, 0.012, 0.5]):
            w.write(*panes(i), time=time)
        w.write(*panes(4))  # no time: one frame (40 ms) after the last
    with av.open(str(out)) as container:
        shown = [frame.time for frame in container.decode(video=0)]
    assert shown == pytest.approx([0.0, 0.005, 0.012, 0.5, 0.54], abs=1e-6)


def presented_seconds(path: Path) -> float:
    """How long players show an MP4: its movie header's duration (edit lists applied)."""
    data = Path(path).read_bytes()
    at = data.index(b"mvhd") + 4  # version, then creation and modification times
    if data[at] == 1:
        timescale, duration = struct.unpack(">IQ", data[at + 20 : at + 32])
    else:
        timescale, duration = struct.unpack(">II", data[at + 12 : at + 20])
    return duration / timescale


@pytest.mark.parametrize(("ends_at", "lasts"), [(1.04, 1.04), (None, 1.25), (3.0, 1.25)])
def test_the_last_frame_lasts_until_the_end_given(tmp_path, ends_at, lasts):
    """A variable rate at 4 frames/s on average: left to the muxer, the last frame lasted
    0.25 s (a frame at that rate), and a 1.04 s clip 1.25 s. `ends_at` ends it, unless
    it is more than a frame after that frame (a source cut short of the length it states)."""
    out = tmp_path / "vfr.mp4"
    times = [0.0, 0.04, 0.2, 0.24, 0.5, 0.6, 1.0]
    with SideBySideWriter(
        out, fps=4, frame_size=(64, 48), time_base=SOURCE_TIME_BASE, ends_at=ends_at
    ) as writer:
        for i, time in enumerate(times):
            writer.write(*panes(i), time=time)
    assert presented_seconds(out) == pytest.approx(lasts, abs=0.001)
    with av.open(str(out)) as container:
        assert [frame.time for frame in container.decode(video=0)] == pytest.approx(times)


def decoded_audio(path: Path) -> tuple[float, np.ndarray]:
    """(when the first sample plays, relative to the video's start; the samples) as a
    player decodes them, edit lists applied."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = list(container.decode(audio=0))
        first = float(frames[0].pts * frames[0].time_base - video.start_time * video.time_base)
    return first, np.concatenate([frame.to_ndarray()[0] for frame in frames])


def exported_second(source: Path, out: Path, start: float) -> Path:
    """A second of panes from `start` of `source`, with its audio, written to `out`."""
    with SideBySideWriter(
        out, fps=25, frame_size=(64, 48), source=source, audio_start=start, audio_end=start + 1
    ) as writer:
        for i in range(25):
            writer.write(*panes(i))
    return out


@pytest.mark.parametrize(("suffix", "start"), [(".mp4", 0.0), (".mp4", 1.0), (".ts", 0.7)])
def test_copied_audio_decodes_as_the_source_does_and_in_sync(tmp_path, suffix, start):
    """The packet a range starts in keeps its place (it began before the start: the audio
    was up to a packet, 21 ms, late), and the packet before it goes too, before the start,
    as the decoder needs it (the AAC priming packet at 0 s: the first 21 ms came out wrong)."""
    source = make_index_clip(tmp_path / f"tone{suffix}", n_frames=75, audio=True)
    out = exported_second(source, tmp_path / "out.mp4", start)
    source_first, source_samples = decoded_audio(source)
    first, samples = decoded_audio(out)
    rate = 48000
    expected = source_samples[round((start - source_first) * rate) :][: rate - 1024]
    got = samples[round(-first * rate) :][: rate - 1024]
    assert len(got) == len(expected) and np.abs(got - expected).max() < 1e-4


@pytest.mark.parametrize("start", [0.013, 0.5, 1.5])
def test_an_avi_range_starting_in_its_first_second_keeps_its_audio(tmp_path, start):
    """A review: the copy sought a second before the start for the decoder's warm-up
    packet, and AVI's demuxer refuses a seek before 0 (EPERM): every range starting in the
    first second failed. (AVI stores AAC times in whole packets: the range start is placed
    to within half a packet, as before.)"""
    source = make_index_clip(tmp_path / "tone.avi", n_frames=75, audio=True)
    out = exported_second(source, tmp_path / "out.mp4", start)
    first, samples = decoded_audio(out)
    assert abs(first) < 0.011 and len(samples) / 48000 == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])  # MPEG-TS: ADTS AAC, start time > 0
def test_source_audio_range_is_copied(tmp_path, suffix):
    source = make_index_clip(tmp_path / f"with_audio{suffix}", n_frames=50, audio=True)
    out = tmp_path / "out.mp4"
    with FileSource(source) as video:
        with SideBySideWriter(
            out,
            fps=video.fps,
            frame_size=(video.width, video.height),
            source=source,
            audio_start=0.4,
            audio_end=1.6,
        ) as writer:
            for frame in video.frames(0.4, 1.6):
                writer.write(frame.rgb, dark_channel(frame.rgb), frame.rgb)
    with av.open(str(out)) as container, av.open(str(source)) as original:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == original.streams.audio[0].sample_rate
        assert float(audio.duration * audio.time_base) == pytest.approx(1.2, abs=0.05)
        assert container.streams.video[0].frames == 30
        copied = [bytes(p) for p in container.demux(audio) if p.size]
        source_packets = {bytes(p) for p in original.demux(original.streams.audio[0]) if p.size}
    assert 1.2 * 48000 / 1024 <= len(copied) <= 1.25 * 48000 / 1024 + 1
    if suffix == ".mp4":  # copied, not re-encoded: byte-identical packets
        assert set(copied) <= source_packets
    with av.open(str(out)) as container:  # and the audio decodes
        samples = sum(f.samples for f in container.decode(audio=0))
    assert samples == pytest.approx(1.2 * 48000, abs=0.05 * 48000)


def test_source_without_audio_gives_video_only(tmp_path, opened_sources):
    source = make_index_clip(tmp_path / "silent.mp4", n_frames=5)
    out = tmp_path / "out.mp4"
    with Mp4Writer(out, fps=25, size=(64, 48), source=source) as writer:
        assert len(opened_sources) == 1 and not is_open(opened_sources[0])  # not needed
        for i in range(3):
            writer.write_image(index_frame(i, (64, 48)))
    with av.open(str(out)) as container:
        assert not container.streams.audio


@pytest.fixture
def opened_sources(monkeypatch) -> list:
    """The containers opened for reading from here on (a writer's: its source)."""
    opened = []
    real_open = av.open

    def recording(file, mode="r", **options):
        container = real_open(file, mode, **options)
        if mode == "r":
            opened.append(container)
        return container

    monkeypatch.setattr(av, "open", recording)
    return opened


def is_open(container) -> bool:
    try:
        container.duration  # noqa: B018 - PyAV refuses it on a closed container
    except AssertionError:
        return False
    return True


def audio_packets(path) -> list[bytes]:
    """Those played from time 0 on (AAC's priming packet, at -1024 samples, is not)."""
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size and p.pts + p.duration > 0]


@pytest.mark.parametrize("ending", ["close", "abort"])
def test_the_source_is_opened_once_and_closed_at_the_end(tmp_path, opened_sources, ending):
    """Probing its audio and copying it use one opening of the source, kept until the end
    (a copy from the start still begins with the packet the probe read)."""
    source = make_index_clip(tmp_path / "with_audio.mp4", n_frames=10, audio=True)
    out = tmp_path / "out.mp4"
    writer = Mp4Writer(out, fps=25, size=(64, 48), source=source)
    assert len(opened_sources) == 1 and is_open(opened_sources[0])
    for i in range(10):
        writer.write_image(index_frame(i, (64, 48)))
    getattr(writer, ending)()
    assert len(opened_sources) == 1 and not is_open(opened_sources[0])
    if ending == "close":
        assert audio_packets(out) == audio_packets(source)  # all of it, in order
    else:
        assert_nothing_left(tmp_path, [source.name])


@pytest.mark.parametrize("failure", [ValueError("broken stream"), KeyboardInterrupt()])
def test_a_failure_starting_the_audio_copy_closes_the_source(
    tmp_path, monkeypatch, opened_sources, failure
):
    source = make_index_clip(tmp_path / "with_audio.mp4", n_frames=3, audio=True)
    out = tmp_path / "out.mp4"

    def failing(container):
        raise failure

    monkeypatch.setattr(writer_module, "_start_seconds", failing)
    with pytest.raises((VideoWriteError, KeyboardInterrupt)) as error:
        Mp4Writer(out, fps=25, size=(64, 48), source=source)
    if isinstance(failure, ValueError):
        assert str(error.value) == f"{out}: cannot copy audio from {source} (broken stream)"
    assert len(opened_sources) == 1 and not is_open(opened_sources[0])
    assert_nothing_left(tmp_path, [source.name])


def assert_nothing_left(folder, keep=()):
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


def test_unwritable_output_paths(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder.mp4").mkdir()
    for bad in ["missing/out.mp4", "file.txt/out.mp4", "folder.mp4", "out.txt", "out"]:
        with pytest.raises(VideoWriteError) as error:
            SideBySideWriter(tmp_path / bad, fps=25, frame_size=(64, 48))
        assert "\n" not in str(error.value) and bad.split("/")[0] in str(error.value)
    assert_nothing_left(tmp_path, ["file.txt", "folder.mp4"])


def test_never_writes_over_its_source(tmp_path, monkeypatch):
    """Through a relative path or a symbolic link: the source is refused as the output."""
    source = make_index_clip(tmp_path / "surgery.mp4", n_frames=3)
    before = source.read_bytes()
    (tmp_path / "link.mp4").symlink_to(source)
    monkeypatch.chdir(tmp_path)
    for target in ["surgery.mp4", "./surgery.mp4", "link.mp4"]:
        with pytest.raises(VideoWriteError, match="is the source video"):
            SideBySideWriter(target, fps=25, frame_size=(64, 48), source=source)
    assert source.read_bytes() == before
    assert_nothing_left(tmp_path, ["link.mp4", "surgery.mp4"])


def test_mp4_writer_pads_odd_frames_and_checks_their_size(tmp_path):
    out = tmp_path / "odd.mp4"
    image = np.full((47, 63, 3), 200, np.uint8)
    with Mp4Writer(out, fps=25, size=(63, 47)) as writer:
        with pytest.raises(ValueError, match=re.escape("expected shape (47, 63, 3) uint8")):
            writer.write_image(image[:, :62])
        for _ in range(3):
            writer.write_image(image)
    with av.open(str(out)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 3 and decoded[0].shape == (48, 64, 3)
    assert np.abs(decoded[0][:40, :56].astype(int) - 200).max() <= 3
    assert decoded[0][47, :40].max() < 40  # the padding row is black


def test_interrupted_export_leaves_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with SideBySideWriter(out, fps=25, frame_size=(64, 48)) as writer:
            for i in range(5):
                writer.write(*panes(i))
            raise KeyboardInterrupt
    assert_nothing_left(tmp_path)


def test_interrupt_while_the_file_is_finished_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C or a stop signal (raised as KeyboardInterrupt) while close() flushes the
    encoder: the hidden partial file is removed as for any other interrupt."""
    out = tmp_path / "out.mp4"
    writer = SideBySideWriter(out, fps=25, frame_size=(64, 48))
    for i in range(3):
        writer.write(*panes(i))

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_finish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.close()
    assert_nothing_left(tmp_path)


def test_encoder_failure_mid_way_leaves_nothing(tmp_path):
    """A failing encode/mux (e.g. disk full) removes the partial file: one-line error."""

    class FullDisk:
        def encode(self, frame):
            raise OSError(28, "No space left on device")

    out = tmp_path / "out.mp4"
    writer = SideBySideWriter(out, fps=25, frame_size=(64, 48))
    writer.write(*panes(0))
    writer._stream = FullDisk()
    with pytest.raises(VideoWriteError, match="No space left"):
        writer.write(*panes(1))
    assert_nothing_left(tmp_path)


def test_closing_without_frames_saves_nothing(tmp_path):
    with pytest.raises(VideoWriteError, match="no frames"):
        with SideBySideWriter(tmp_path / "out.mp4", fps=25, frame_size=(64, 48)):
            pass
    assert_nothing_left(tmp_path)


def test_quality_out_of_range_or_not_whole_is_refused(tmp_path):
    for crf in (-1, 52, 20.5, "20", True):
        with pytest.raises(
            ValueError, match=re.escape(f"whole number 0-51, lower is better; got {crf!r}")
        ):
            Mp4Writer(tmp_path / "out.mp4", fps=25, size=(64, 48), crf=crf)
    assert_nothing_left(tmp_path)


def test_a_transposed_frame_is_told_apart_from_the_size_expected(tmp_path):
    """(width, height, 3) instead of (height, width, 3): both shapes in numpy's order."""
    with Mp4Writer(tmp_path / "out.mp4", fps=25, size=(64, 48)) as writer:
        with pytest.raises(ValueError) as error:
            writer.write_image(np.zeros((64, 48, 3), np.uint8))
        writer.write_image(np.zeros((48, 64, 3), np.uint8))
    assert "frame is shape (64, 48, 3) uint8; expected shape (48, 64, 3) uint8" in str(error.value)


def test_panes_of_another_size_are_scaled_to_the_writers(tmp_path):
    """A stream whose frame size changes midway (a raw H.264 stream, a capture device
    switching resolution) is written whole, as FFmpeg writes it: scaled to the first size.
    It was an error ("frame is 32x48, the writer was opened for 64x48"): no file at all."""
    out = tmp_path / "out.mp4"
    with SideBySideWriter(out, fps=25, frame_size=(64, 48)) as writer:
        writer.write(*panes(0))
        assert writer.size_change is None
        writer.write(*panes(1, (32, 24)), time=0.04)
        writer.write(*panes(2, (96, 80)), time=0.08)  # larger, another aspect
        writer.write(*panes(3))
    assert writer.size_change == writer_module.SizeChange((32, 24), 0.04)  # the first only
    with FileSource(out) as video:
        frames = list(video.frames())
    assert (video.width, video.height) == (3 * 64, 48)
    assert [read_index(f.rgb[:, :64]) for f in frames] == [0, 1, 2, 3]


def test_auto_encoder_falls_back_in_order(monkeypatch):
    rate = Fraction(25)
    nvenc = writer_module._encoder_opens("h264_nvenc", (192, 48), rate, 20)
    expected = "h264_nvenc" if nvenc else "libx264"
    assert writer_module.pick_encoder("auto", (192, 48), rate, 20) == expected
    # NVENC's H.264 width limit: a 3-up 1080p export goes to libx264.
    assert writer_module.pick_encoder("auto", (5760, 1080), rate, 20) == "libx264"
    monkeypatch.setattr(writer_module, "AUTO_ENCODERS", ("no_such_encoder", "libx264"))
    assert writer_module.pick_encoder("auto", (192, 48), rate, 20) == "libx264"


def test_unknown_encoder_is_a_write_error(tmp_path):
    with pytest.raises(VideoWriteError, match="no_such_encoder"):
        SideBySideWriter(tmp_path / "o.mp4", fps=25, frame_size=(64, 48), encoder="no_such_encoder")
    assert_nothing_left(tmp_path)


def pcm_avi(path, codec: str) -> str:
    """An AVI of 25 frames with 1 s of stereo PCM audio stored without a channel layout, as
    recorders write them."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream(codec, rate=8000)
        audio.layout = "stereo"
        for i in range(25):
            for packet in video.encode(av.VideoFrame.from_ndarray(index_frame(i, (64, 48)))):
                out.mux(packet)
        tone = (np.sin(np.arange(8000) / 3) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]).reshape(1, -1), "s16", "stereo")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*audio.encode(frame), *audio.encode(None)]:
            out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    with av.open(str(path)) as check:
        return check.streams.audio[0].codec_context.layout.name


def test_pcm_audio_without_a_layout_is_copied(tmp_path):
    source = tmp_path / "recorder.avi"
    assert pcm_avi(source, "pcm_s16le") == "2 channels"  # what the MP4 muxer refused
    out = tmp_path / "out.mp4"
    with SideBySideWriter(out, fps=25, frame_size=(64, 48), source=source) as writer:
        for i in range(25):
            writer.write(*panes(i, (64, 48)))
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.layout.name == "stereo"


def test_audio_mp4_cannot_carry_is_left_out_with_a_warning(tmp_path, caplog, opened_sources):
    source = tmp_path / "phone.avi"
    pcm_avi(source, "pcm_mulaw")
    out = tmp_path / "out.mp4"
    opened_sources.clear()
    with SideBySideWriter(out, fps=25, frame_size=(64, 48), source=source) as writer:
        assert len(opened_sources) == 1 and not is_open(opened_sources[0])  # not needed
        for i in range(25):
            writer.write(*panes(i, (64, 48)))
    with av.open(str(out)) as container:
        assert not container.streams.audio and container.streams.video[0].frames == 25
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(
        "out.mp4: written without audio: pcm_mulaw audio cannot go into an MP4 as it is ("
    )


# --- temporary files, concurrent writers, frame-size limits -------------------------------


def hidden_temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial.mp4"))


def test_two_writers_to_one_output_do_not_collide(tmp_path):
    """The app recording and exporting to one name at once: each encodes into a hidden file
    of its own; one cancelled removes only its own; the other saves a whole video."""
    out = tmp_path / "out.mp4"
    export = SideBySideWriter(out, fps=25, frame_size=(64, 48))
    recording = SideBySideWriter(out, fps=25, frame_size=(64, 48))
    temporaries = hidden_temporaries(tmp_path)
    assert len(temporaries) == 2 and all(t.startswith(".out.mp4.") for t in temporaries)
    for i in range(5):
        export.write(*panes(i))
        recording.write(*panes(100 + i))
    recording.abort()
    assert len(hidden_temporaries(tmp_path)) == 1  # the export's is still there
    assert export.close() == out
    with FileSource(out) as source:
        assert [read_index(f.rgb[:, :64]) for f in source.frames()] == list(range(5))
    assert_nothing_left(tmp_path, ["out.mp4"])


def test_outputs_differing_only_in_suffix_do_not_collide(tmp_path):
    with (
        SideBySideWriter(tmp_path / "x.mp4", fps=25, frame_size=(64, 48)) as mp4,
        SideBySideWriter(tmp_path / "x.mov", fps=25, frame_size=(64, 48)) as mov,
    ):
        assert len(hidden_temporaries(tmp_path)) == 2
        for i in range(3):
            mp4.write(*panes(i))
            mov.write(*panes(10 + i))
    for name, first in (("x.mp4", 0), ("x.mov", 10)):
        with FileSource(tmp_path / name) as source:
            assert read_index(next(source.frames()).rgb[:, :64]) == first
    assert_nothing_left(tmp_path, ["x.mov", "x.mp4"])


def test_a_failing_clean_up_does_not_hide_the_write_error(tmp_path, monkeypatch):
    """abort() cannot remove its file (a read-only folder by then): the error raised is
    still the one that stopped the writing."""
    writer = SideBySideWriter(tmp_path / "out.mp4", fps=25, frame_size=(64, 48))
    writer.write(*panes(0))

    def refused(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    class FullDisk:
        def encode(self, frame):
            raise OSError(28, "No space left on device")

    writer._stream = FullDisk()
    monkeypatch.setattr(Path, "unlink", refused)
    with pytest.raises(VideoWriteError, match="No space left"):
        writer.write(*panes(1))


def test_frames_wider_than_h264_allows_say_so(tmp_path):
    """H.264 (libx264) takes at most 16384 px a side: an 8K 3-up export (23040 px) is told
    why and what to do, before any file is made."""
    rate = Fraction(25)
    side = writer_module.H264_MAX_SIDE
    assert writer_module._encoder_opens("libx264", (side, 16), rate, 20)  # the measured limit
    assert not writer_module._encoder_opens("libx264", (side + 2, 16), rate, 20)
    with pytest.raises(VideoWriteError, match=r"^23040x4320 is wider than H\.264 allows"):
        writer_module.pick_encoder("auto", (23040, 4320), rate, 20)
    out = tmp_path / "c8k_desmoked.mp4"
    with pytest.raises(VideoWriteError) as error:
        SideBySideWriter(out, fps=25, frame_size=(7680, 4320))
    assert str(error.value) == (
        f"{out}: the 3up layout of 7680x4320 frames is 23040x4320, wider than H.264 allows "
        "(16384 px at most): use the 2up or vertical layout, or a smaller input"
    )
    with pytest.raises(VideoWriteError, match=r"taller than H\.264 allows .*: use a smaller input"):
        SideBySideWriter(out, fps=25, frame_size=(64, 17000), layout="2up")
    with pytest.raises(
        VideoWriteError, match=rf"^{re.escape(str(out))}: 64x17000 is taller than H\.264"
    ):
        Mp4Writer(out, fps=25, size=(64, 17000))
    assert_nothing_left(tmp_path)


def test_crf_0_says_what_it_costs(tmp_path, caplog):
    """QA: crf 0 (libx264 lossless) writes the High 4:4:4 Predictive profile, which many
    players cannot open: the export goes on, and says so; crf 1 is plain High."""
    profiles = {}
    for crf in (0, 1):
        out = tmp_path / f"crf{crf}.mp4"
        with Mp4Writer(out, fps=25, size=(64, 48), crf=crf, encoder="libx264") as writer:
            writer.write_image(np.full((48, 64, 3), 128, np.uint8))
        with av.open(str(out)) as container:
            profiles[crf] = container.streams.video[0].codec_context.profile
    assert profiles == {0: "High 4:4:4 Predictive", 1: "High"}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "crf0.mp4: crf 0 is lossless, in H.264's High 4:4:4 Predictive profile, which many "
        "players and hardware decoders cannot open (1 or more: the usual High profile)"
    ]


def test_nvenc_never_gets_cq_0():
    """NVENC reads cq 0 as "automatic" quality: the best a crf asks of it is cq 1."""
    assert writer_module._encoder_options("h264_nvenc", 0)["cq"] == "1"
    assert writer_module._encoder_options("h264_nvenc", 20)["cq"] == "20"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fps": float("nan")}, "fps must be a positive finite number, got nan"),
        ({"fps": float("inf")}, "fps must be a positive finite number, got inf"),
        ({"fps": 25, "preset": "bogus"}, "preset must be one of ultrafast, superfast"),
    ],
)
def test_settings_no_encoder_takes_are_refused_in_words(tmp_path, options, message):
    """QA: NaN/infinite fps raised Fraction's own errors; an unknown preset was reported
    as 'no usable H.264 encoder'."""
    with pytest.raises(ValueError, match=message):
        Mp4Writer(tmp_path / "out.mp4", size=(64, 48), **options)
    assert_nothing_left(tmp_path)
