"""Network definitions and weight I/O."""

from __future__ import annotations

import json

import pytest
import torch

from engine.models import (
    WeightsError,
    build_network,
    default_config,
    load_network,
    read_config,
    save_weights,
    working_shape,
)
from engine.models.paper_unet import PaperDesmoker


def test_paper_unet_is_pix2pix_unet256() -> None:
    net = PaperDesmoker()
    params = sum(p.numel() for p in net.parameters())
    assert abs(params - 54.41e6) < 0.01e6  # pix2pix U-Net-256 with a 4-channel input
    convs = [m for m in net.unet.down.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 8 and all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    dropouts = [m for m in net.unet.up.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 3 and all(d.p == 0.5 for d in dropouts)
    assert isinstance(net.unet.up[-1].block[-1], torch.nn.Tanh)
    assert net.unet.down[0].block[0].in_channels == 4
    assert PaperDesmoker(use_dark_channel=False).unet.down[0].block[0].in_channels == 3


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (17, 33), (64, 112)])
def test_fast_net_takes_any_size(shape: tuple[int, int]) -> None:
    net = build_network("fast").eval()
    with torch.no_grad():
        alpha, colour = net(torch.rand(2, 4, *shape))
    expected = (-(-shape[0] // 4), -(-shape[1] // 4))
    assert alpha.shape == (2, 1, *expected) and colour.shape == (2, 3, *expected)
    assert 0 <= alpha.min() and alpha.max() <= 1
    assert torch.allclose(alpha, torch.full_like(alpha, 0.1), atol=1e-6)  # the initial bias


def test_paper_net_takes_any_size() -> None:
    net = PaperDesmoker(ngf=4).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 4, 37, 300))
    assert out.shape == (1, 3, 37, 300)
    assert 0 <= out.min() and out.max() <= 1


def test_working_shape_keeps_aspect_and_stride() -> None:
    assert working_shape(720, 1280, 256, 16) == (256, 448)
    assert working_shape(1080, 1920, 256, 16) == (256, 448)
    assert working_shape(3, 7, 256, 16) == (256, 592)
    assert working_shape(720, 1280, 256, 256) == (256, 512)
    h, w = working_shape(1081, 1921, 288, 16)
    assert h % 16 == 0 and w % 16 == 0 and abs(w / h - 1921 / 1081) < 0.05
    with pytest.raises(ValueError):
        working_shape(0, 5, 256, 16)


@pytest.mark.parametrize(
    ("model", "arch", "stride"),
    [
        ("fast", None, 16),
        ("fast", {"unshuffle": 2}, 8),
        ("fast", {"unshuffle": 8, "widths": [8, 8, 8]}, 32),
        ("paper", {"ngf": 4}, 256),
    ],
)
def test_the_stride_depends_on_the_architecture(model, arch, stride) -> None:
    """Always 16 for `fast` before, whatever its unshuffle."""
    assert build_network(model, arch).stride == stride


@pytest.mark.parametrize("stride", [1, 16, 256])
def test_working_shape_of_a_very_thin_frame_is_capped(stride: int) -> None:
    """At most 8x the short side along the long one, aspect kept, at least one stride."""
    assert working_shape(1, 4000, 256, stride) == (stride, 2048)
    assert working_shape(2, 3840, 256, stride) == (stride, 2048)
    assert working_shape(4000, 1, 256, stride) == (2048, stride)
    assert working_shape(100, 900, 256, 16) == (224, 2048)  # 9:1, just past the cap
    for height, width in [(720, 1280), (1080, 1920), (2160, 3840), (1080, 3840), (100, 800)]:
        uncapped = round(256 * width / height / stride) * stride
        assert working_shape(height, width, 256, stride) == (256, max(stride, uncapped))


def test_weights_round_trip(tmp_path) -> None:
    net = build_network("fast", {"widths": [8, 16, 32]})
    config = default_config("fast", {"widths": [8, 16, 32]})
    config["metrics"] = {"psnr": 31.0}
    path = save_weights(tmp_path / "m.safetensors", net, config)
    assert json.loads(path.with_suffix(".json").read_text())["metrics"]["psnr"] == 31.0
    loaded, loaded_config = load_network(path)
    assert loaded_config == config
    x = torch.rand(1, 4, 32, 48)
    with torch.no_grad():
        for a, b in zip(net.eval()(x), loaded(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_weights_and_their_description_are_replaced_together(tmp_path, monkeypatch) -> None:
    """A full disk while the readable .json is written keeps the old pair: not new weights
    beside the old weights' description (best.safetensors / best.json of a run)."""
    import errno
    from pathlib import Path

    net = build_network("fast", {"widths": [8, 16, 32]})
    config = default_config("fast", {"widths": [8, 16, 32]})
    path = save_weights(tmp_path / "m.safetensors", net, {**config, "metrics": {"psnr": 1.0}})
    before = path.read_bytes(), path.with_suffix(".json").read_bytes()

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError, match="No space left"):
        save_weights(path, net, {**config, "metrics": {"psnr": 2.0}})
    monkeypatch.undo()
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_a_refused_second_rename_keeps_the_old_weights_and_description(
    tmp_path, monkeypatch
) -> None:
    """Whichever of the pair is renamed first is put back when the other cannot be."""
    import os

    net = build_network("fast", {"widths": [8, 16, 32]})
    config = default_config("fast", {"widths": [8, 16, 32]})
    path = save_weights(tmp_path / "m.safetensors", net, {**config, "metrics": {"psnr": 1.0}})
    before = path.read_bytes(), path.with_suffix(".json").read_bytes()
    real_replace, renames = os.replace, []

    def second_refused(source, target):
        renames.append(target)
        if len(renames) == 2:
            raise PermissionError(13, "Permission denied", str(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", second_refused)
    with pytest.raises(PermissionError):
        save_weights(path, net, {**config, "metrics": {"psnr": 2.0}})
    monkeypatch.undo()
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_weights_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        read_config(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(WeightsError, match="junk.safetensors"):
        load_network(junk)
    # Config says widths 8-16-32 but the tensors are of the default 32-64-128 net.
    wrong = tmp_path / "wrong.safetensors"
    save_weights(wrong, build_network("fast"), default_config("fast", {"widths": [8, 16, 32]}))
    with pytest.raises(WeightsError, match="wrong shapes"):
        load_network(wrong)
    bad_arch = tmp_path / "bad_arch.safetensors"
    save_weights(bad_arch, build_network("fast"), default_config("fast", {"depth": 3}))
    with pytest.raises(WeightsError, match="do not fit"):
        load_network(bad_arch)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("fast.onnx", "ONNX export"),
        ("checkpoint.pt", "training checkpoint"),
        ("m.engine", "engine"),
    ],
)
def test_files_made_from_weights_say_what_to_give_instead(tmp_path, name, says) -> None:
    made = tmp_path / name
    made.write_bytes(b"\x08\x07 not safetensors")
    with pytest.raises(WeightsError, match=f"is (an|a) .*{says}.*give .*safetensors"):
        load_network(made)
