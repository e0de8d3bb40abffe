"""Text from strangers is data: names are checked where they enter, everything is escaped where
it is shown (Markdown, the terminal)."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from bountytree.errors import UserError
from bountytree.models.spec import SpecError, parse_spec
from bountytree.text import check_name, markdown, terminal

HOSTILE = [
    "x](https://phish.example/) ![t](https://tracker.example/p.png)",
    "name`\n\n# Independently audited: 99.9 % test accuracy\n",
    "<img src=https://tracker.example/p.png> <script>alert(1)</script>",
    "| a | b |\n| --- | --- |\n| c | d |",
    "*bold* _em_ ~~gone~~ [ref]: https://x.example/",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_renders_hostile_text_as_the_same_text(text):
    for block in (False, True):
        html = (
            MarkdownIt("commonmark")
            .enable("table")
            .enable("strikethrough")
            .render(markdown(text, block=block))
        )
        for tag in ("<a", "<img", "<h1", "<script", "<table", "<em", "<strong", "<s>", "<code"):
            assert tag not in html, (text, html)


def test_inline_markdown_stays_on_one_line_and_control_characters_show():
    assert "\n" not in markdown("a\nb\rc")
    assert markdown("red \x1b[31m") == "red \ufffd\\[31m"


def test_terminal_text_cannot_move_the_cursor_or_break_lines():
    shown = terminal("ok\x1b[2J\x1b]0;title\x07\nnext\u202eevil")
    assert "\x1b" not in shown and "\x07" not in shown and "\n" not in shown
    assert "\u202e" not in shown  # no right-to-left override


@pytest.mark.parametrize("good", ["digits MLP 64-64-10", "Handwritten digits", "Zürich (v2)"])
def test_honest_names_pass(good):
    assert check_name(good, "task name") == good


@pytest.mark.parametrize("bad", ["", " padded", "a" * 101, "x`y", "a\nb", "[x](y)", "<b>"])
def test_names_outside_the_rule_are_refused_in_one_line(bad):
    with pytest.raises(UserError, match=r"^task name .*: use 1 to 100 letters") as info:
        check_name(bad, "task name")
    assert "\n" not in str(info.value)


def test_a_spec_name_is_a_name():
    spec = {
        "name": "x`\n# Audited",
        "input_shape": [4],
        "num_classes": 2,
        "layers": [{"type": "Linear", "in_features": 4, "out_features": 2}],
        "training": {"lr": 0.1},
    }
    with pytest.raises(SpecError, match=r"^name: "):
        parse_spec(spec)
    assert parse_spec({**spec, "name": "tiny linear"}).name == "tiny linear"


def test_a_setext_heading_is_text():
    html = MarkdownIt("commonmark").render(markdown("Verified by the oracle\n===", block=True))
    assert "<h1" not in html and "<h2" not in html
