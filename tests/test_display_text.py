"""Names from outside (files, weights, devices) shown as they are: never read as HTML by the
GUI, never a menu mnemonic, and every message on one line with its control characters
visible (a newline in a name split the CLI's error in two; an escape sequence in one could
clear the terminal). Security QA, items 1 and 2."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QTextDocument

from desmoke_app.cli import main
from desmoke_app.commands.common import OneLineArgumentParser, fail, visible
from desmoke_app.gui.messages import literal, menu_text, one_line, plain_label, window_title
from engine.video.errors import VideoError
from tests.clips import make_index_clip
from tests.gui_support import DCP, clip, open_clip, window  # noqa: F401

#: A file name a QLabel in its default (auto) format drew as a big green "OK" over the
#: error it was named in, the rest pushed out of sight.
HTML_NAME = "<font size=7 color=lime>OK<br><img src=x width=700 height=300>&more[*].mp4"


def shown_as(html: str) -> str:
    """What Qt shows for rich text `html`."""
    document = QTextDocument()
    document.setHtml(html)
    return document.toPlainText()


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("a\nb.mp4", "a\\nb.mp4"),
        ("a\r\tb.mp4", "a\\r\\tb.mp4"),
        ("a\x1b[2Jb.mp4", "a\\x1b[2Jb.mp4"),  # the terminal is not cleared
        ("evil\u202egpj.mp4", "evil\\u202egpj.mp4"),  # no right-to-left override
        ("a\u2028b.mp4", "a\\u2028b.mp4"),  # Unicode's line separator
        ("bytes\udcff.mp4", "bytes\\udcff.mp4"),  # a name's byte that is not UTF-8
        ("C:\\clips\\a b é 手術.mp4", "C:\\clips\\a b é 手術.mp4"),  # left as it is
    ],
)
def test_visible_shows_control_characters_as_escapes(name, shown) -> None:
    assert visible(name) == shown
    assert visible(visible(name)) == shown  # shown twice: the same


def test_cli_error_naming_a_file_with_a_newline_is_one_line(tmp_path, monkeypatch, capsys):
    """`desmoke export $'missing\\nname.mp4'` printed "desmoke: error: missing", then
    "name.mp4: no such file" on a line of its own."""
    monkeypatch.chdir(tmp_path)
    assert main(["export", "missing\nname.mp4", "--model", "dcp"]) == 1
    err = capsys.readouterr().err
    assert err == "desmoke: error: missing\\nname.mp4: no such file\n"


def test_cli_output_name_with_a_newline_is_one_line(tmp_path, capsys) -> None:
    source = make_index_clip(tmp_path / "in.mp4", n_frames=4, size=(64, 48), fps=12)
    output = tmp_path / "gone" / "bad\nname.mp4"
    assert main(["export", str(source), "-o", str(output), "--model", "dcp"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad\\nname.mp4" in err
    assert list(tmp_path.rglob("*")) == [source]  # nothing written


def test_cli_error_never_passes_an_escape_sequence_to_the_terminal(capsys) -> None:
    assert fail("a\x1b[2J\x1b]0;title\x07b.mp4: no such file", 3) == 3
    assert (
        capsys.readouterr().err
        == "desmoke: error: a\\x1b[2J\\x1b]0;title\\x07b.mp4: no such file\n"
    )


def test_argument_errors_are_one_line(capsys) -> None:
    parser = OneLineArgumentParser(prog="desmoke-app")
    parser.add_argument("--model")
    with pytest.raises(SystemExit):
        parser.error("a\nb.safetensors: weights file not found")
    err = capsys.readouterr().err
    assert err.endswith("desmoke-app: error: a\\nb.safetensors: weights file not found\n")


def test_cli_wrote_line_names_the_output_on_one_line(tmp_path, capsys) -> None:
    source = make_index_clip(tmp_path / "in.mp4", n_frames=4, size=(64, 48), fps=12)
    output = tmp_path / "out\nname.mp4"
    assert main(["export", str(source), "-o", str(output), "--model", "dcp"]) == 0
    wrote = [line for line in capsys.readouterr().out.splitlines() if "wrote" in line]
    assert len(wrote) == 1 and "out\\nname.mp4 (" in wrote[0]
    assert output.is_file()  # the file keeps its real name


def test_cli_argument_errors_are_one_line(tmp_path, capsys) -> None:
    """desmoke's own parser (and so each subcommand's) quotes a bad value on one line."""
    with pytest.raises(SystemExit):
        main(["export", "in.mp4", "--model", "dcp", "--crf", "12\x1b[2J"])
    err = capsys.readouterr().err
    assert "\x1b" not in err and "12\\x1b[2J" in err
    assert err.splitlines()[-1].startswith("desmoke export: error:")


def test_app_argument_naming_a_file_with_a_newline_is_one_line(tmp_path, capsys) -> None:
    from desmoke_app.gui.main import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--model", str(tmp_path / "gone\nx.safetensors")])
    err = capsys.readouterr().err
    assert "gone\\nx.safetensors: weights file not found" in err
    assert err.splitlines()[-1].startswith("desmoke-app: error:")


def test_one_line_shows_a_names_newline() -> None:
    """The GUI's one line: an engine error naming a file keeps its newline visible (it was
    joined into a space: "missing name.mp4", a file that does not exist either); a
    library's message over lines is still joined."""
    assert one_line(VideoError("missing\nname.mp4: no such file"), "opening") == (
        "missing\\nname.mp4: no such file"
    )
    assert one_line(RuntimeError("at a\x1b[2J\n  line"), "processing") == (
        "processing: at a\\x1b[2J line"
    )


def test_text_guessed_to_be_html_is_shown_as_it_is(qtbot) -> None:
    label = plain_label(HTML_NAME)
    qtbot.addWidget(label)
    assert label.textFormat() == Qt.TextFormat.PlainText
    # Drawn as HTML, the label was over 300 px high (the <img>); as text, one line.
    assert label.sizeHint().height() < 2 * label.fontMetrics().height()
    assert shown_as(literal(HTML_NAME)) == HTML_NAME  # tooltips, message boxes
    assert literal("plain a & b.mp4") == "plain a & b.mp4"  # no HTML guessed: left alone
    assert shown_as(literal("<b>x</b>\ny.mp4")) == "<b>x</b>\\ny.mp4"


def test_menu_and_title_text_keep_ampersands_and_placeholders() -> None:
    text = menu_text("/clips/R&D\t2.mp4")
    assert text == "/clips/R&&D\\t2.mp4"
    assert QKeySequence.mnemonic(text).isEmpty()  # no Alt+D shortcut made of the name
    assert window_title("desmoke - a[*]b.mp4") == "desmoke - a[*][*]b.mp4"


def test_message_bar_shows_a_name_as_it_is(qtbot) -> None:
    from desmoke_app.gui.message_bar import MessageBar

    bar = MessageBar()
    qtbot.addWidget(bar)
    bar.show_message(f"/v/{HTML_NAME}\nx: not a readable video")
    bar.show()
    assert bar.text() == f"/v/{HTML_NAME}\\nx: not a readable video"
    assert bar.label.textFormat() == Qt.TextFormat.PlainText


def test_about_shows_a_weights_path_as_it_is() -> None:
    from desmoke_app.gui.about import about_html

    description = f"model fast from /w/{HTML_NAME}.safetensors"
    notice = "<h1>fell back</h1> to onnxruntime"
    text = shown_as(about_html("fast", description, {}, notice))
    assert f"Running: {description}" in text
    assert f"Note: {notice}" in text


def test_window_shows_an_html_named_file_as_it_is(qtbot, window, clip, tmp_path) -> None:  # noqa: F811
    """The title (Qt takes a "[*]" in it for its unsaved-changes mark), the status bar's
    source, the Recent menu (a '&' is the next letter's shortcut)."""
    named = tmp_path / HTML_NAME
    named.write_bytes(clip.read_bytes())
    open_clip(qtbot, window, named)
    source = window.status_labels["source"]
    assert source.text() == HTML_NAME and source.textFormat() == Qt.TextFormat.PlainText
    assert window.windowHandle().title() == f"desmoke - {HTML_NAME}"  # as drawn
    recent = [a for a in window.recent_menu.actions() if a.text().endswith(".mp4")]
    assert recent[0].text() == menu_text(str(named))
    assert QKeySequence.mnemonic(recent[0].text()).isEmpty()


def test_weights_file_item_shows_its_name_and_path_as_they_are(qtbot) -> None:
    from desmoke_app.gui.controls import ControlPanel

    panel = ControlPanel()
    qtbot.addWidget(panel)
    weights = f"/w/{HTML_NAME}\n.safetensors"
    panel.set_settings({"model": weights})
    index = panel.model.currentIndex()
    assert panel.model.itemText(index) == f"{HTML_NAME}\\n.safetensors"
    assert panel.model.currentData() == weights  # what is opened: the name itself
    tip = panel.model.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert shown_as(tip) == visible(weights)


def test_a_recent_file_gone_is_named_on_one_line(qtbot, window, tmp_path) -> None:  # noqa: F811
    gone = str(tmp_path / "gone\nname.mp4")
    window.settings.add_recent_file(gone)
    window.open_recent(gone)
    assert window.message_bar.text() == (
        f"{visible(gone)}: no such file; removed from the recent files"
    )
    assert "\n" not in window.message_bar.label.text()


def test_refused_weights_are_named_and_what_runs_said(qtbot, tmp_path) -> None:
    """Weights whose config is nested too deeply (json's RecursionError): the message
    names the file (the engine's WeightsError) and says what still runs, which the
    state sent before it (what the controls show) is."""
    from safetensors.numpy import save_file

    from desmoke_app.gui.processor import Processor

    deep = tmp_path / "deep.safetensors"
    nested = "[" * 100_000 + "]" * 100_000
    config = '{"model": "fast", "x": ' + nested + "}"
    save_file({"w": np.zeros(1, np.float32)}, str(deep), metadata={"desmoke_config": config})
    processor = Processor()
    states, errors = [], []
    processor.configured.connect(states.append)
    processor.failed.connect(errors.append)
    processor._configure(dict(DCP))
    processor._configure({**DCP, "model": str(deep)})
    assert states[-1].settings == DCP and states[-1].asked["model"] == str(deep)
    assert len(errors) == 1 and errors[0].startswith(f"{deep}: ")
    assert errors[0].endswith(f"; still using dcp on {states[-1].backend_name}")
