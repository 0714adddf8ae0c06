"""`desmoke build-engine MODEL -o ENGINE`: a TensorRT engine from an ONNX export or weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from desmoke_app.commands.common import Subcommands, fail, visible


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "build-engine",
        help="build a TensorRT engine (NVIDIA GPU + TensorRT) from an ONNX or .safetensors",
        description=(
            "Build a TensorRT engine for this GPU and TensorRT version, with a JSON sidecar "
            "the tensorrt backend checks before use. From .safetensors weights the engine "
            "goes to the engine cache (found automatically) unless -o is given. An engine "
            "file is trusted like a program (loading one runs the code it holds): load only "
            "engines you built, never one sent to you."
        ),
    )
    parser.add_argument(
        "model", type=Path, metavar="MODEL", help="model.onnx or weights.safetensors"
    )
    parser.add_argument("-o", "--output", type=Path, metavar="ENGINE", help="engine file to write")
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="half precision (TensorRT 11: needs an fp16 ONNX or a .safetensors input)",
    )
    parser.add_argument(
        "--timing-cache", type=Path, metavar="FILE", help="TensorRT timing cache (read, updated)"
    )
    parser.add_argument(
        "--shape",
        metavar="HxW",
        help="fixed working resolution, e.g. 256x448, in multiples of the network's stride "
        "(16 for the default fast, 256 for paper; default: a profile for 128..512 px)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="the .safetensors an ONNX came from, for one not made by `desmoke export-model` "
        "(which records its weights in the ONNX)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from training.build_engine import BuildError, build_engine, parse_shape

    try:
        shape = parse_shape(args.shape) if args.shape else None
        if args.model.suffix not in (".onnx", ".safetensors"):
            return fail(f"{args.model}: expected an .onnx or .safetensors file")
        path, sidecar = build_engine(
            args.model,
            args.output,
            fp16=args.fp16,
            timing_cache=args.timing_cache,
            shape=shape,
            weights=args.weights,
        )
    except BuildError as exc:
        return fail(str(exc))
    except Exception as exc:  # WeightsError, CUDA/TensorRT runtime failures: one line
        return fail(f"{type(exc).__name__}: {exc}")
    gpu = sidecar["gpu"]
    (spec,) = sidecar["inputs"].values()
    print(
        f"desmoke: wrote {visible(str(path))} (TensorRT {sidecar['tensorrt_version']}, {sidecar['precision']}, "
        f"{gpu['name']} sm_{''.join(map(str, gpu['compute_capability']))}, "
        f"input {spec['min']}..{spec['max']})"
    )
    return 0
