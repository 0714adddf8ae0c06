"""FileSource: metadata, sequential decode, frame-accurate seek, pixel formats, bad input."""

from __future__ import annotations

import random
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from engine.video import FileSource, VideoError, VideoOpenError
from tests.clips import (
    break_packet,
    corrupt_clip,
    cut_raw_stream,
    damaged_clip,
    make_index_clip,
    make_vfr_clip,
    make_zero_frame_clip,
    read_index,
)

N_FRAMES, FPS = 48, 25


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """48 frames at 25 fps, GOP 12 with 2 B-frames, AAC audio, +faststart MP4."""
    folder = tmp_path_factory.mktemp("source")
    return make_index_clip(folder / "index.mp4", n_frames=N_FRAMES, fps=FPS, audio=True)


def assert_rgb(rgb: np.ndarray, width: int, height: int) -> None:
    assert rgb.shape == (height, width, 3)
    assert rgb.dtype == np.uint8
    assert rgb.flags.c_contiguous


def test_clip_has_b_frames_so_seeking_must_decode_forward(clip):
    with av.open(str(clip)) as container:
        kinds = {int(frame.pict_type) for frame in container.decode(video=0)}
    assert {1, 2, 3} <= kinds  # AV_PICTURE_TYPE_I, _P, _B


def test_metadata(clip):
    with FileSource(clip) as source:
        assert (source.width, source.height) == (160, 96)
        assert source.fps == pytest.approx(FPS)
        assert source.duration == pytest.approx(N_FRAMES / FPS)
        assert source.frame_count == N_FRAMES and source.frame_count_exact
        assert source.codec == "h264"
        assert source.has_audio
        assert source.is_live is False
        assert source.skipped_frames == 0


def test_sequential_read_gives_every_frame_with_index_and_time(clip):
    with FileSource(clip) as source:
        frames = list(source.frames())
        assert source.read() is None
    assert len(frames) == N_FRAMES
    for i, frame in enumerate(frames):
        assert_rgb(frame.rgb, 160, 96)
        assert frame.index == i == read_index(frame.rgb)
        assert frame.time == pytest.approx(i / FPS)


def test_seek_by_time_is_frame_accurate(clip):
    """Start, middle and last millisecond of each frame's interval, in random order."""
    cases = []
    for i in range(N_FRAMES):
        start = Fraction(i, FPS)
        cases += [(float(start), i), (float(start + Fraction(1, 50)), i)]
        cases.append((float(start + Fraction(1, FPS) - Fraction(1, 1000)), i))
    random.Random(1).shuffle(cases)
    with FileSource(clip) as source:
        for time, expected in cases:
            frame = source.seek(time)
            assert (frame.index, read_index(frame.rgb)) == (expected, expected), time
            assert frame.time == pytest.approx(expected / FPS)
            following = source.read()  # reading continues right after the seek frame
            if expected + 1 < N_FRAMES:
                assert (following.index, read_index(following.rgb)) == (expected + 1,) * 2
            else:
                assert following is None


def test_seek_frame_and_ends(clip):
    order = list(range(N_FRAMES))
    random.Random(2).shuffle(order)
    with FileSource(clip) as source:
        for index in order:
            frame = source.seek_frame(index)
            assert (frame.index, read_index(frame.rgb)) == (index, index)
        assert source.seek_frame(N_FRAMES) is None
        assert source.seek(N_FRAMES / FPS + 0.5) is None
        assert read_index(source.seek(-3.0).rgb) == 0
        with pytest.raises(ValueError):
            source.seek_frame(-1)


def test_frames_in_a_time_range(clip):
    with FileSource(clip) as source:
        source.read()
        indices = [read_index(f.rgb) for f in source.frames(start=0.4, end=1.0)]
    assert indices == list(range(10, 25))


@pytest.mark.parametrize("suffix", [".mkv", ".ts", ".avi"])
def test_seek_in_other_containers(tmp_path, suffix):
    """MPEG-TS has no index (seeks can land late); AVI stores no pts (B-frames reorder)."""
    path = make_index_clip(tmp_path / f"clip{suffix}", n_frames=60)
    with FileSource(path) as source:
        assert [read_index(f.rgb) for f in source.frames()] == list(range(60))
        for index in random.Random(3).sample(range(60), 15):
            frame = source.seek(index / FPS)
            assert (frame.index, read_index(frame.rgb)) == (index, index)
            following = source.read()
            assert following is None if index == 59 else read_index(following.rgb) == index + 1
        last = source.seek_frame(59)  # sought by the stated end: from time 0 (AVI's delay)
        assert (last.index, read_index(last.rgb)) == (59, 59)
        assert source.seek_frame(60) is None


def test_a_seek_between_frames_shows_the_frame_on_screen_then(tmp_path):
    """QA: in a 2 fps AVI (a tick is a frame) a seek to 0.3 s rounded to the tick at 0.5 s
    and skipped the frame shown from 0 to 0.5 s; an export from --start 0.3 had no
    picture for its first 0.2 s."""
    path = make_index_clip(tmp_path / "slow.avi", n_frames=6, fps=2, gop=2, bframes=0)
    with FileSource(path) as source:
        for time, shown in [(0.3, 0), (0.5, 1), (0.74, 1), (0.999, 1), (1.0, 2), (2.2, 4)]:
            frame = source.seek(time)
            assert (frame.index, read_index(frame.rgb)) == (shown, shown), time
        assert [f.index for f in source.frames(start=0.3, end=1.2)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "size", "suffix"),
    [
        ("ffv1", "gray", (64, 48), ".mkv"),
        ("libx264", "yuv420p10le", (64, 48), ".mkv"),
        ("libx264", "yuv444p", (64, 48), ".mp4"),
        ("libx264", "yuv444p", (33, 65), ".mkv"),  # odd size: no chroma subsampling
    ],
)
def test_pixel_formats_and_odd_sizes_give_rgb_uint8(tmp_path, codec, pix_fmt, size, suffix):
    path = make_index_clip(
        tmp_path / f"clip{suffix}", n_frames=12, size=size, codec=codec, pix_fmt=pix_fmt
    )
    with FileSource(path) as source:
        assert source.pixel_format == pix_fmt
        frames = list(source.frames())
        assert read_index(source.seek_frame(7).rgb) == 7
    assert [read_index(f.rgb) for f in frames] == list(range(12))
    for frame in frames:
        assert_rgb(frame.rgb, *size)
    if pix_fmt == "gray":
        assert np.array_equal(frames[3].rgb[..., 0], frames[3].rgb[..., 2])


def test_upright_follows_ffmpegs_sign_counter_clockwise():
    """PyAV's frame.rotation is FFmpeg's counter-clockwise angle: -90 turns clockwise."""
    from engine.video.file_source import upright

    coded = np.arange(6, dtype=np.uint8).reshape(2, 3)  # [[0 1 2], [3 4 5]]
    clockwise = upright(coded, -90)
    assert clockwise.tolist() == [[3, 0], [4, 1], [5, 2]]
    assert clockwise.flags.c_contiguous
    assert upright(coded, 90).tolist() == [[2, 5], [1, 4], [0, 3]]
    assert upright(coded, 270).tolist() == clockwise.tolist()
    assert upright(coded, -180).tolist() == [[5, 4, 3], [2, 1, 0]]
    assert upright(coded, 0) is coded


@pytest.mark.parametrize(
    ("rotation", "suffix", "shown_size"),
    [(-90, ".mp4", (96, 160)), (90, ".mkv", (96, 160)), (180, ".mp4", (160, 96))],
)
def test_rotated_video_is_shown_upright(tmp_path, rotation, suffix, shown_size):
    """A display-matrix rotation (phone portrait video): upright frames of the displayed
    size, after seeks too. The index reads right only on an upright frame."""
    n_frames = 30
    path = make_index_clip(
        tmp_path / f"rotated{suffix}", n_frames=n_frames, size=shown_size, rotation=rotation
    )
    with av.open(str(path)) as container:  # the helper's tag must survive the muxer
        assert next(container.decode(video=0)).rotation % 360 == rotation % 360
    with FileSource(path) as source:
        assert (source.width, source.height) == shown_size
        frames = list(source.frames())
        for index in random.Random(4).sample(range(n_frames), 8):
            frame = source.seek_frame(index)
            assert_rgb(frame.rgb, *shown_size)
            assert read_index(frame.rgb) == index
            following = source.read()
            last = index == n_frames - 1
            assert following is None if last else read_index(following.rgb) == index + 1
    assert [read_index(f.rgb) for f in frames] == list(range(n_frames))
    for frame in frames:
        assert_rgb(frame.rgb, *shown_size)


@pytest.mark.parametrize(
    ("sar", "suffix", "shown_size"),
    [
        (Fraction(64, 45), ".mp4", (256, 96)),  # PAL 16:9 (720x576 shows as 1024x576)
        (Fraction(16, 15), ".mkv", (192, 96)),  # PAL 4:3
        (Fraction(8, 9), ".mp4", (160, 96)),  # NTSC 4:3: narrower than coded
        (Fraction(1), ".mp4", (180, 96)),  # square pixels stated: as coded
    ],
)
def test_anamorphic_video_is_shown_with_square_pixels(tmp_path, sar, suffix, shown_size):
    """Non-square pixels (a sample aspect ratio): frames at the display aspect, as players
    show them, the coded width scaled by the ratio; the index still reads, after seeks too."""
    path = make_index_clip(
        tmp_path / f"anamorphic{suffix}", n_frames=24, size=(180, 96), sample_aspect_ratio=sar
    )
    with av.open(str(path)) as container:  # the helper's tag must survive the muxer
        assert container.streams.video[0].sample_aspect_ratio == sar
    with FileSource(path) as source:
        assert (source.width, source.height) == shown_size
        frames = list(source.frames())
        sought = source.seek_frame(17)
    assert [read_index(f.rgb) for f in frames] == list(range(24))
    assert read_index(sought.rgb) == 17
    for frame in [*frames, sought]:
        assert_rgb(frame.rgb, *shown_size)


def test_the_sample_aspect_ratio_scales_the_coded_width_before_the_turn(tmp_path):
    """Portrait phone video with non-square pixels: the ratio is of the coded frame's x
    axis, which is the displayed frame's height once turned upright."""
    path = make_index_clip(
        tmp_path / "both.mkv",
        n_frames=6,
        size=(96, 160),
        rotation=90,
        sample_aspect_ratio=Fraction(64, 45),
    )
    with FileSource(path) as source:
        assert (source.width, source.height) == (96, 228)  # 160 * 64/45 = 227.6, tall
        frames = list(source.frames())
    assert [read_index(f.rgb) for f in frames] == list(range(6))
    assert_rgb(frames[0].rgb, 96, 228)


def test_square_pixels_cost_nothing_and_damaged_ratios_are_ignored():
    from engine.video.file_source import pixel_aspect, square_pixels

    rgb = np.zeros((4, 6, 3), np.uint8)
    assert square_pixels(rgb, Fraction(1)) is rgb  # no copy, no resize
    assert square_pixels(rgb, Fraction(3, 2)).shape == (4, 9, 3)
    stated = [None, Fraction(64, 45), Fraction(1000), Fraction(1, 1000)]
    ratios = [pixel_aspect(SimpleNamespace(sample_aspect_ratio=sar)) for sar in stated]
    assert ratios == [1, Fraction(64, 45), 1, 1]


def test_matroska_without_frame_count_estimates_it(tmp_path):
    path = make_index_clip(tmp_path / "clip.mkv", n_frames=20, codec="ffv1")
    with FileSource(path) as source:
        assert not source.frame_count_exact
        assert source.frame_count == 20
        assert source.duration == pytest.approx(0.8)


def test_variable_frame_rate(tmp_path):
    times = [0.0, 0.04, 0.12, 0.14, 0.3, 0.31, 0.5]
    path = make_vfr_clip(tmp_path / "vfr.mp4", times)
    with FileSource(path) as source:
        frames = list(source.frames())
        assert [f.time for f in frames] == pytest.approx(times)
        assert [read_index(f.rgb) for f in frames] == list(range(len(times)))
        assert source.fps == pytest.approx(len(times) / 0.54, rel=0.01)  # average rate
        for time, expected in [(0.05, 1), (0.13, 2), (0.14, 3), (0.29, 3), (0.305, 4), (0.52, 6)]:
            frame = source.seek(time)
            assert read_index(frame.rgb) == expected, time
            assert frame.time == pytest.approx(times[expected])


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_the_last_frame_of_a_variable_frame_rate_file_is_found_by_its_end(tmp_path, suffix):
    """Frames bunched at the end (a recording that caught up): by the average rate the last
    frame's index points seconds before it, where End showed frame 2 of 7 (the app's own
    recordings showed the last but one). Sought by the stated end (MP4) or the measured
    one (Matroska states none, nor a frame count: an estimate), numbered as the last, and
    read() ends after it."""
    times = [0.0, 0.5, 1.0, 1.5, 1.52, 1.54, 1.56]
    path = make_vfr_clip(tmp_path / f"vfr{suffix}", times)
    with FileSource(path) as source:
        last = source.frame_count - 1
        frame = source.seek_frame(last)
        assert (frame.index, read_index(frame.rgb)) == (last, len(times) - 1)
        assert frame.time == pytest.approx(times[-1])
        assert source.read() is None and source.last_index == last
        again = source.seek_frame(last)  # the end now known: straight to it
        assert (again.index, read_index(again.rgb)) == (last, len(times) - 1)


def test_frames_after_a_damaged_stretch_are_numbered_by_their_time(tmp_path):
    """Frames that follow seconds of undecodable data are numbered as a seek numbers them
    (by time), not as the next in a count that lost its place: the app showed frame 44 at
    26 s, and a step back from it went to 1.7 s."""
    with FileSource(damaged_clip(tmp_path)) as source:
        frames = list(source.frames())
        after = [f for f in frames if f.time > 20]
        assert after and frames[0].index == 0
        for frame in after:
            assert frame.index == round(frame.time * FPS)
        # The first after the gap says so (a player goes on from it), and only it.
        assert [f.time for f in frames if f.after_gap] == [after[0].time]
        again = source.seek_frame(after[0].index)
        assert again.index == after[0].index and again.time == pytest.approx(after[0].time)


def one_line_error(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_file(tmp_path):
    path = tmp_path / "nothing.mp4"
    with pytest.raises(VideoOpenError) as error:
        FileSource(path)
    assert "no such file" in one_line_error(error, path)


def test_folder_is_not_a_video(tmp_path):
    with pytest.raises(VideoOpenError) as error:
        FileSource(tmp_path)
    one_line_error(error, tmp_path)


@pytest.mark.parametrize("name", ["notes.txt", "notes.mp4"])
def test_text_file_is_not_a_video(tmp_path, name):
    # FFmpeg happily "decodes" a .txt as ANSI art (its tty demuxer): it must still be refused.
    path = tmp_path / name
    path.write_text("this is not a video\n" * 100)
    with pytest.raises(VideoOpenError) as error:
        FileSource(path)
    assert "not a" in one_line_error(error, path)


def test_random_bytes_are_not_a_video(tmp_path):
    path = tmp_path / "noise.avi"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    with pytest.raises(VideoOpenError) as error:
        FileSource(path)
    one_line_error(error, path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "sound.mka"
    make_zero_frame_clip(tmp_path / "zero.mkv")
    with av.open(str(tmp_path / "zero.mkv")) as source, av.open(str(path), "w") as out:
        audio = out.add_stream_from_template(source.streams.audio[0])
        for packet in source.demux(source.streams.audio[0]):
            if packet.size:
                packet.stream = audio
                out.mux(packet)
    with pytest.raises(VideoOpenError) as error:
        FileSource(path)
    assert "no video stream" in one_line_error(error, path)


def test_zero_frame_video(tmp_path):
    path = make_zero_frame_clip(tmp_path / "zero.mkv")
    with pytest.raises(VideoOpenError) as error:
        FileSource(path)
    assert "no decodable frame" in one_line_error(error, path)


def test_errors_share_a_base_class():
    assert issubclass(VideoOpenError, VideoError)


def run_isolated(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter: decoding from a closed container crashed the process
    (a segfault), which must fail one test, not end the test run."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_a_closed_source_refuses_to_read_or_seek(clip):
    result = run_isolated(f"""
from engine.video import FileSource, VideoError
with FileSource({str(clip)!r}) as source:
    started = source.frames()
    next(started)
source.close()  # again: does nothing
for attempt in (
    source.read,
    lambda: next(started),  # a generator begun before the close
    lambda: next(source.frames()),
    lambda: source.seek(1.0),
    lambda: source.seek_frame(3),
):
    try:
        attempt()
    except VideoError as error:
        print(error)
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{clip}: the source is closed"] * 5


def test_truncated_and_corrupted_video_skips_and_counts(clip, tmp_path):
    """Cut at 60 % with bytes flipped: damaged frames are skipped and counted, no crash."""
    damaged = corrupt_clip(clip, tmp_path / "damaged.mp4", keep=0.6, flips=40, seed=0)
    with FileSource(damaged) as source:
        frames = list(source.frames())
        assert 0 < len(frames) < N_FRAMES
        assert source.skipped_frames >= 1
        times = [f.time for f in frames]
        assert times == sorted(times)
        # Undamaged frames after the damage still decode to their own index.
        assert read_index(frames[-1].rgb) == round(frames[-1].time * FPS)
        for time in (0.0, 0.5, 1.0, 1.8):  # seeking into or past the damage: no crash
            source.seek(time)


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory):
    """An interrupted copy: half the bytes of a clip that states 250 frames (10 s); about a
    quarter of them decode."""
    folder = tmp_path_factory.mktemp("cut")
    whole = make_index_clip(folder / "whole.mp4", n_frames=250, fps=FPS)
    return corrupt_clip(whole, folder / "cut.mp4", keep=0.5, flips=0)


def counting_seeks(source: FileSource, monkeypatch) -> list[int]:
    """The frame indices `source` seeks to from now on."""
    seeks: list[int] = []
    seek_index = source._seek_index

    def counted(index: int):
        seeks.append(index)
        return seek_index(index)

    monkeypatch.setattr(source, "_seek_index", counted)
    return seeks


def test_a_seek_past_the_cut_shows_the_last_frame_and_remembers_it(cut_clip, monkeypatch):
    """A seek to a stated frame past the cut: the last frame that decodes, in a dozen
    seeks the first time (not one per frame back from the one asked for), at once after."""
    with FileSource(cut_clip) as source:
        last = list(source.frames())[-1]
    assert last.index < 240 - 64  # far from the end the file states
    with FileSource(cut_clip) as source:
        assert source.last_index is None and source.end_time is None  # not met yet
        seeks = counting_seeks(source, monkeypatch)
        frame = source.seek_frame(240)
        assert (frame.index, read_index(frame.rgb)) == (last.index, last.index)
        assert len(seeks) <= 12
        assert source.read() is None  # it reads on after the last frame
        assert source.last_index == last.index
        assert source.end_time == pytest.approx(last.time + 1 / FPS)
        seeks.clear()
        assert source.seek_frame(249).index == last.index and seeks == [last.index]
        assert read_index(source.seek_frame(10).rgb) == 10  # frames before the cut as ever
        assert source.seek_frame(250) is None  # past the frames the file states


def test_a_read_to_the_end_finds_it_too(cut_clip, monkeypatch):
    with FileSource(cut_clip) as source:
        last = list(source.frames())[-1]
        assert source.read() is None
        assert source.last_index == last.index
        seeks = counting_seeks(source, monkeypatch)
        assert source.seek_frame(240).index == last.index and seeks == [last.index]


def test_a_whole_file_ends_where_it_states(clip):
    with FileSource(clip) as source:
        assert source.seek_frame(N_FRAMES) is None  # past the end: nothing to search for
        assert source.last_index is None  # and no end claimed from it
        source.seek_frame(N_FRAMES - 3)
        assert [f.index for f in iter(source.read, None)] == [N_FRAMES - 2, N_FRAMES - 1]
        assert source.last_index == N_FRAMES - 1
        assert source.end_time == pytest.approx(N_FRAMES / FPS)


def test_a_read_after_a_seek_past_the_end_finds_no_end(clip):
    """The decoder is past the end after a seek that found nothing: the frame read before
    it is not the last one."""
    with FileSource(clip) as source:
        source.read()
        assert source.seek(N_FRAMES / FPS + 0.5) is None
        assert source.read() is None and source.last_index is None


def test_last_frame_before_takes_a_few_seeks():
    """The search behind a seek past the cut: the last frame that decodes, the source left
    to read on after it, in a dozen seeks (not one per frame)."""
    from engine.video.file_source import last_frame_before

    class CutShort:
        """Frames 0..end decode (end -1: none)."""

        def __init__(self, end: int) -> None:
            self.end, self.seeks, self.next = end, [], None

        def seek_frame(self, index: int):
            self.seeks.append(index)
            found = index <= self.end
            self.next = index + 1 if found else None  # past the end: nothing more to read
            return SimpleNamespace(index=index) if found else None

    for end, asked in ((243, 749), (748, 749), (747, 749), (0, 500)):
        source = CutShort(end)
        assert last_frame_before(source.seek_frame, asked).index == end
        assert len(source.seeks) <= 12 and source.next == end + 1
    assert last_frame_before(CutShort(-1).seek_frame, 300) is None


def test_missing_tail_tells_a_cut_short_file_from_rounding():
    from engine.video.file_source import missing_tail

    assert missing_tail(2.08, 10.0) == pytest.approx(7.92)
    assert missing_tail(9.96, 10.0) == 0.0  # a frame's rounding
    assert missing_tail(97.5, 100.0) == pytest.approx(2.5)  # more than 2% of the stated time
    assert missing_tail(98.5, 100.0) == 0.0
    assert missing_tail(3.0, 0.0) == 0.0  # no stated duration: nothing to compare


# -- files that state no duration ------------------------------------------------------------
def assert_seeks_exactly(
    source: FileSource, n_frames: int, seed: int, first_picture: int = 0
) -> None:
    """Random frames by index and by time, each followed by the next frame; the ends. Frame
    i shows picture first_picture + i."""
    for index in random.Random(seed).sample(range(n_frames), 12) + [n_frames - 1, 0]:
        picture = first_picture + index
        frame = source.seek_frame(index)
        assert (frame.index, read_index(frame.rgb)) == (index, picture)
        assert frame.time == pytest.approx(index / FPS)
        following = source.read()
        last = index == n_frames - 1
        assert following is None if last else read_index(following.rgb) == picture + 1
        mid_frame = source.seek((index + 0.5) / FPS)
        assert (mid_frame.index, read_index(mid_frame.rgb)) == (index, picture)
    assert source.seek_frame(n_frames) is None


def test_a_live_recording_states_no_duration_and_is_measured(tmp_path):
    """Matroska as a live recorder writes it (no duration, no index): the length comes from
    its packets, and seeks work all along it (it showed 1 frame, and seeks went to 0)."""
    path = make_index_clip(tmp_path / "live.mkv", n_frames=60, live=True)
    with av.open(str(path)) as container:  # what the case is about
        assert not container.duration and not container.streams.video[0].duration
    with FileSource(path) as source:
        assert source.duration == pytest.approx(60 / FPS)
        assert source.frame_count == 60 and source.video_duration == 0.0
        assert [read_index(f.rgb) for f in source.frames()] == list(range(60))
        assert_seeks_exactly(source, 60, seed=5)


def test_an_interrupted_recording_is_measured_to_its_cut(tmp_path):
    """A live recording cut short (the recorder was killed): its length is where its frames
    end, its last frame is the one at its end, and it is not taken for a cut-short file."""
    whole = make_index_clip(tmp_path / "whole.mkv", n_frames=100, gop=25, live=True)
    path = corrupt_clip(whole, tmp_path / "crashed.mkv", keep=0.6, flips=0)
    with FileSource(path) as source:
        frames = list(source.frames())
    last = frames[-1]
    last_index = read_index(last.rgb)  # by its time: a B-frame before it may be lost
    assert 20 < len(frames) < 90 and last_index == round(last.time * FPS)
    with FileSource(path) as source:
        assert source.duration == pytest.approx(last.time + 1 / FPS)
        assert source.frame_count == last_index + 1
        end = source.seek_frame(source.frame_count - 1)
        assert (end.index, read_index(end.rgb)) == (last_index, last_index)
        assert source.read() is None
        assert source.end_time == pytest.approx(source.duration)
        middle = source.seek(source.duration / 2)
        assert read_index(middle.rgb) == middle.index == int(source.duration / 2 * FPS)


def test_a_raw_h264_stream_is_counted_and_seeks_by_byte_position(tmp_path):
    """A raw H.264 stream: no container, no timestamps, no duration. Its frames are counted
    (exact), timed at its frame rate, and sought from the keyframe before them (it showed 1
    frame, and a seek failed: "cannot seek (Operation not permitted)")."""
    from engine.video.file_source import scan_packets

    path = make_index_clip(tmp_path / "raw.h264", n_frames=60, gop=12)
    with FileSource(path) as source:
        assert source.frame_count == 60 and source.frame_count_exact
        assert source.duration == pytest.approx(60 / FPS) and source.fps == pytest.approx(FPS)
        frames = list(source.frames())
        assert [(f.index, read_index(f.rgb)) for f in frames] == [(i, i) for i in range(60)]
        assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(60)])
        assert source.last_index == 59
        assert_seeks_exactly(source, 60, seed=6)
    # Every keyframe, by its byte position: a seek decodes one GOP at most.
    keyframes = scan_packets(path, 0, 1).keyframes
    assert [number for number, _ in keyframes] == [0, 12, 24, 36, 48]


@pytest.mark.parametrize(
    ("codec", "suffix", "options"),
    [("libx264", ".h264", {"open_gop": True}), ("libx265", ".hevc", {})],  # x265: open GOPs
)
def test_a_raw_stream_with_open_gops_still_seeks_exactly(tmp_path, codec, suffix, options):
    """An open GOP's keyframe (an H.264 recovery point, an HEVC CRA picture) is followed by
    frames shown before it, which a decoder starting there drops: a count started there
    would be a frame or two off."""
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec}")
    path = make_index_clip(tmp_path / f"open{suffix}", n_frames=60, codec=codec, **options)
    with FileSource(path) as source:
        assert source.frame_count == 60
        assert_seeks_exactly(source, 60, seed=7)


@pytest.mark.parametrize("bframes", [0, 2])
def test_a_raw_stream_cut_mid_gop_starts_at_its_first_keyframe(tmp_path, bframes):
    """A raw stream cut (or dumped) mid-GOP: its first packets reference frames and
    parameter sets it lacks, and do not decode. They are no frames of the video: frames
    count from the first keyframe, for read, seek and frame_count alike (frame_count counted
    every packet, 67; read numbered the frames that decode and seek_frame by packet: frame
    10 showed picture 22 read, 15 sought)."""
    whole = make_index_clip(tmp_path / "whole.h264", n_frames=72, gop=12, bframes=bframes)
    path = cut_raw_stream(whole, tmp_path / "cut.h264", packet=5)  # keyframe 12 is packet 7
    with FileSource(path) as source:
        assert source.frame_count == 60 and source.duration == pytest.approx(60 / FPS)
        frames = list(source.frames())
        assert [(f.index, read_index(f.rgb)) for f in frames] == [(i, 12 + i) for i in range(60)]
        assert source.last_index == 59
        assert_seeks_exactly(source, 60, seed=8, first_picture=12)
        assert source.seek_frame(60) is None


def assert_seeks_agree_with_reads(path: Path, n_frames: int) -> dict[int, np.ndarray]:
    """Every frame index: seek_frame shows the frame read() numbers so, or in a gap the one
    shown then (the last before it), then reads on to the frame read() gives after that.
    The frames read() gives, by index."""
    with FileSource(path) as source:
        assert source.frame_count == n_frames
        read = {frame.index: frame.rgb for frame in source.frames()}
        for index in range(n_frames):
            shown = max(i for i in read if i <= index)
            frame = source.seek_frame(index)
            assert frame.index == shown
            assert np.array_equal(frame.rgb, read[shown]), f"seek_frame({index}): another picture"
            following = source.read()
            after = min((i for i in read if i > shown), default=None)
            assert (following and following.index) == after
    return read


@pytest.mark.parametrize("bframes", [0, 2])
def test_a_packet_that_does_not_decode_leaves_a_gap_in_a_raw_stream(tmp_path, bframes):
    """Packet 53 of 72 does not decode. Without B-frames a frame's packet number is its
    index: frame 53 is missing. With them, frames show out of decoding order: the gap is
    somewhere in the GOP of frames 48-59. Not every later frame moved a place (read() showed
    picture 61 as frame 60, seek_frame(60) picture 60)."""
    whole = make_index_clip(tmp_path / "whole.h264", n_frames=72, gop=12, bframes=bframes)
    path = break_packet(whole, tmp_path / "broken.h264", packet=53)
    read = assert_seeks_agree_with_reads(path, 72)
    missing = set(range(72)) - set(read)
    assert 53 in missing if bframes == 0 else missing
    assert missing <= set(range(48, 60)) and 71 in read
    damaged_gop = range(48, 60)  # frames after a missing one show what the decoder made up
    assert all(read_index(rgb) == i for i, rgb in read.items() if i not in damaged_gop)


def test_a_raw_stream_cut_mid_gop_with_open_gops_reads_as_it_seeks(tmp_path):
    """Cut mid-GOP before an open GOP's keyframe, whose leading frames do not decode: one
    numbering still, with a gap where they belong (after the first GOP). The frames that
    follow show their pictures."""
    whole = make_index_clip(tmp_path / "whole.h264", n_frames=72, gop=12, open_gop=True)
    path = cut_raw_stream(whole, tmp_path / "cut.h264", packet=13)
    with FileSource(path) as source:
        n_frames = source.frame_count
    read = assert_seeks_agree_with_reads(path, n_frames)
    first_picture = read_index(read[0])
    assert [read_index(read[i]) for i in sorted(read)] == list(range(first_picture, 72))
    assert max(read) == n_frames - 1 and read_index(read[n_frames - 1]) == 71


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_a_file_that_states_its_duration_is_not_scanned(tmp_path, monkeypatch, suffix):
    """The pass over the packets is for files that state no duration: opening any other
    costs what it did."""
    import engine.video.file_source as file_source

    def no_scan(*args):
        raise AssertionError("scanned a file that states its duration")

    monkeypatch.setattr(file_source, "scan_packets", no_scan)
    path = make_index_clip(tmp_path / f"clip{suffix}", n_frames=30)
    with FileSource(path) as source:
        assert source.frame_count == 30 and source.duration == pytest.approx(30 / FPS)


def test_a_closed_source_is_freed_at_once(clip):
    """Soak QA: opening file after file grew the app to 116 threads and +430 MB. The
    decoding generator referred back to its source, so a closed source, its FFmpeg decoder
    and that decoder's threads waited for the garbage collector's next full pass."""
    import gc
    import weakref

    gc.disable()
    try:
        source = FileSource(clip)
        source.read()
        source.seek_frame(30)
        source.read()
        source.close()
        freed = weakref.ref(source)
        del source
        assert freed() is None
    finally:
        gc.enable()
