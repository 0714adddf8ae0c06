"""Export: safetensors round trip, ONNX against torch, fp16, bad weights; the CLI command."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from engine.models import WeightsError, build_network, default_config, load_network, save_weights
from engine.models.onnx_export import exported_onnx
from training.export import ExportError, export_weights, onnx_outputs

ARCHS = {"fast": {"widths": [8, 16, 32]}, "paper": {"ngf": 4}}


def saved(tmp_path: Path, model: str, seed: int = 0) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(seed)
    network = build_network(model, ARCHS[model]).eval()
    with torch.no_grad():  # move every parameter off its initial value (non-trivial outputs)
        for parameter in network.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    path = save_weights(
        tmp_path / f"{model}.safetensors", network, default_config(model, ARCHS[model])
    )
    return path, network


def reload_matches(weights: Path, network: torch.nn.Module, shape: tuple[int, int]) -> float:
    """Max |reloaded - network| on a random input: a weights file round-trip check."""
    reloaded, _ = load_network(weights)
    x = torch.rand(1, 4, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = network.eval()(x)
        b = reloaded(x)
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return max(float((p - q).abs().max()) for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize("model, shape", [("fast", (48, 80)), ("paper", (256, 256))])
def test_reload_gives_the_same_outputs(tmp_path: Path, model: str, shape) -> None:
    path, network = saved(tmp_path, model)
    assert reload_matches(path, network, shape) == 0.0


@pytest.mark.parametrize("model, shape", [("fast", (96, 160)), ("paper", (256, 512))])
def test_onnx_matches_torch(tmp_path: Path, model: str, shape) -> None:
    path, network = saved(tmp_path, model)
    out = tmp_path / f"{model}.onnx"
    report = export_weights(path, out)
    assert max(report["max_abs_error"].values()) <= 1e-4
    graph = onnx.load(str(out))
    assert [i.name for i in graph.graph.input] == ["input"]
    assert [o.name for o in graph.graph.output] == list(network.output_names)
    # An independent check at another size than export's own (dynamic height and width).
    x = torch.rand(1, 4, *shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = network(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for got, want in zip(onnx_outputs(out.read_bytes(), x.numpy()), expected, strict=True):
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4)
    # Outputs name their sizes apart from the input's: fast's are a quarter of it.
    assert [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim] == [
        "batch",
        "",
        "height",
        "width",
    ]
    for output in graph.graph.output:
        dims = [d.dim_param for d in output.type.tensor_type.shape.dim]
        assert dims == ["batch", "", "out_height", "out_width"]


def test_fp16_export(tmp_path: Path) -> None:
    path, _ = saved(tmp_path, "fast")
    out = tmp_path / "fast16.onnx"
    report = export_weights(path, out, fp16=True)
    assert report["fp16"] and max(report["max_abs_error"].values()) <= 2e-2
    graph = onnx.load(str(out))
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16


def test_an_fp16_export_leaves_the_network_in_full_precision() -> None:
    """The half-precision graph is traced from a copy: the caller's network (compared with
    the export next, or run by a torch backend) keeps its fp32 weights unrounded."""
    network = build_network("fast", ARCHS["fast"])
    before = {k: v.clone() for k, v in network.state_dict().items()}
    model = onnx.load_from_string(exported_onnx(network, fp16=True))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    for key, value in network.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_missing_weights_are_named(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"none\.safetensors: weights file not found"):
        export_weights(tmp_path / "none.safetensors", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_weights_not_matching_their_config_are_named(tmp_path: Path) -> None:
    network = build_network("fast", ARCHS["fast"])
    path = save_weights(
        tmp_path / "odd.safetensors", network, default_config("fast", {"widths": [8, 16, 16]})
    )
    with pytest.raises(WeightsError, match=r"odd\.safetensors: does not match the architecture"):
        export_weights(path, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_output_must_be_onnx(tmp_path: Path) -> None:
    path, _ = saved(tmp_path, "fast")
    with pytest.raises(ExportError, match=r"x\.txt: the output must be a \.onnx file"):
        export_weights(path, tmp_path / "x.txt")


def test_cli_export_model(tmp_path: Path, capsys) -> None:
    from desmoke_app.cli import main

    path, _ = saved(tmp_path, "fast")
    out = tmp_path / "cli.onnx"
    assert main(["export-model", str(path), "--onnx", str(out)]) == 0
    assert out.is_file() and "onnxruntime vs torch" in capsys.readouterr().out
    code = main(["export-model", str(tmp_path / "no.safetensors"), "--onnx", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "weights file not found" in err[0]
    code = main(["export-model", str(path), "--onnx", str(tmp_path / "nodir" / "a.onnx")])
    assert code == 1 and "output folder does not exist" in capsys.readouterr().err
    # A file where the folder goes was said not to exist.
    code = main(["export-model", str(path), "--onnx", str(out / "a.onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"desmoke: error: {out}: output folder is a file, not a folder"]


@pytest.mark.parametrize(
    "error, reason",
    [
        (OSError(28, "No space left on device"), "No space left on device"),
        (PermissionError(13, "Permission denied"), "Permission denied"),
    ],
)
def test_cli_export_model_write_failure_is_one_line(
    tmp_path: Path, monkeypatch, capsys, error: OSError, reason: str
) -> None:
    """A full disk (after part of the file is written) or a read-only folder: one line that
    names the output, and no temporary file left behind."""
    from desmoke_app.cli import main

    path, _ = saved(tmp_path, "fast")
    before = sorted(tmp_path.iterdir())

    def fails_part_way(self: Path, data: bytes) -> int:
        with open(self, "wb") as handle:
            handle.write(data[:100])
        raise error

    monkeypatch.setattr(Path, "write_bytes", fails_part_way)
    out = tmp_path / "z.onnx"
    assert main(["export-model", str(path), "--onnx", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"desmoke: error: {out}: cannot write ({reason})"]
    assert sorted(tmp_path.iterdir()) == before


def _kept(tmp_path: Path) -> Path:
    """An earlier export at the target, which a failed export must leave as it is."""
    existing = tmp_path / "good.onnx"
    existing.write_bytes(b"an earlier, working export")
    return existing


@pytest.mark.parametrize(
    "compare, message",
    [
        (
            lambda *a, **k: {"alpha": 1.0},
            r"good\.onnx: onnxruntime differs from torch by 1\.00e\+00",
        ),
        (lambda *a, **k: 1 / 0, r"good\.onnx: onnxruntime cannot run the export"),
    ],
)
def test_an_export_failing_its_check_keeps_the_existing_file(
    tmp_path: Path, monkeypatch, compare, message: str
) -> None:
    """The new export is checked in memory: the file at the target is replaced only by an
    export that passed, and no temporary file is left."""
    import training.export

    path, _ = saved(tmp_path, "fast")
    existing = _kept(tmp_path)
    before = sorted(tmp_path.iterdir())
    checked: list[bytes] = []

    def recorded(network, model, *args, **kwargs):
        checked.append(model)
        return compare()

    monkeypatch.setattr(training.export, "compare_onnx", recorded)
    with pytest.raises(ExportError, match=message):
        export_weights(path, existing)
    assert existing.read_bytes() == b"an earlier, working export"
    assert checked and checked[0] != existing.read_bytes()  # this export was the one checked
    assert sorted(tmp_path.iterdir()) == before


def test_non_finite_weights_are_named_up_front(tmp_path: Path, capsys) -> None:
    """Weights with a NaN (a diverged run): said as such when they load (the app too), not
    as a NaN difference from onnxruntime; the earlier export stays."""
    from desmoke_app.cli import main
    from engine.models import WeightsError, load_network

    network = build_network("fast", ARCHS["fast"])
    name, parameter = next(iter(network.named_parameters()))
    with torch.no_grad():
        parameter.view(-1)[0] = float("nan")
    path = save_weights(
        tmp_path / "nan.safetensors", network, default_config("fast", ARCHS["fast"])
    )
    existing = _kept(tmp_path)
    message = f"{path}: the weights are not finite (NaN/inf in {name}): a diverged training run?"
    for load in (load_network, lambda p: export_weights(p, existing)):
        with pytest.raises(WeightsError) as error:
            load(path)
        assert str(error.value) == message
    assert main(["export-model", str(path), "--onnx", str(existing)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"desmoke: error: {message}"]
    assert existing.read_bytes() == b"an earlier, working export"


def test_cli_export_model_takes_a_shipped_model_name(tmp_path: Path, monkeypatch, capsys) -> None:
    """`desmoke export --model fast` runs the shipped weights: export-model takes the name
    too (it said "fast: weights file not found"); a name without shipped weights says what
    to give instead."""
    from desmoke_app.cli import main

    monkeypatch.chdir(tmp_path)  # no file called "fast" here
    assert main(["export-model", "fast", "--onnx", "fast.onnx"]) == 0
    assert capsys.readouterr().out.startswith("wrote fast.onnx (fast, fp32)")
    assert main(["export-model", "nothing", "--onnx", "x.onnx"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "desmoke: error: nothing: weights file not found; give a .safetensors file, or fast "
        "for the shipped weights"
    ]
    # dcp is a model, a classical one: it was said to be a weights file not found.
    assert main(["export-model", "dcp", "--onnx", "x.onnx"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "desmoke: error: dcp has no network to export (a classical method); give a "
        ".safetensors file, or fast for the shipped weights"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast.onnx"]


def test_cli_export_model_refuses_to_write_over_its_input(tmp_path: Path, capsys) -> None:
    """Weights under a .onnx name, exported onto themselves, were replaced by the export."""
    from desmoke_app.cli import main

    path, _ = saved(tmp_path, "fast")
    weights = tmp_path / "w0x.onnx"
    weights.write_bytes(path.read_bytes())
    link = tmp_path / "link.onnx"
    os.link(weights, link)
    for output in (weights, link):
        assert main(["export-model", str(weights), "--onnx", str(output)]) == 1
        assert capsys.readouterr().err.splitlines() == [
            f"desmoke: error: {output}: the output is the input (the weights); give another name"
        ]
    assert weights.read_bytes() == path.read_bytes()
