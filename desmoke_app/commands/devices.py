"""`desmoke devices`: the capture devices FFmpeg can open here."""

from __future__ import annotations

import argparse

from desmoke_app.commands.common import Subcommands, visible


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser("devices", help="list capture devices (v4l2/dshow/avfoundation)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.video import list_capture_devices

    devices = list_capture_devices()
    if not devices:
        print("no capture devices found")
        return 0
    for device in devices:
        fields = (device.path, device.format, device.name, device.description)
        print("\t".join(visible(str(field)) for field in fields))
    return 0
