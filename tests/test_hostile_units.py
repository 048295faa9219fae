"""Hostile input, without models: what the edge refuses, what it cleans, what always encodes."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from vcstream import safetext
from vcstream.engine import REQUEST_ID
from vcstream.errors import InputError
from vcstream.net import protocol as p
from vcstream.request_watchdog import RequestWatchdog
from vcstream.voices import check_name

ANSI = "\x1b[31mred\x1b[0m \x1b]0;pwned\x07title \x1b[2J\x1b[Hclear \x9b5mblink\x07 bell\x08"


def _code(message: str | bytes) -> tuple[str, str]:
    with pytest.raises(p.ProtocolError) as err:
        p.parse_command(message)
    return err.value.code, str(err.value)


@pytest.mark.parametrize(
    "message, where",
    [
        (r'{"type":"speak","id":"surr","text":"hi \ud800 there"}', "'text'"),
        (r'{"type":"speak","id":"p","phonemes":"h\udfff"}', "'phonemes'"),
        (r'{"type":"speak","id":"s\ud800","text":"hi"}', "'id'"),
        (r'{"type":"speak","text":"hi","voice":"v\ud800"}', "'voice'"),
        (r'{"type":"save","name":"n\udc00"}', "'name'"),
        (r'{"type":"load","name":"n\ufffe"}', "'name'"),  # a non-character
        (r'{"type":"speak","text":"\ufdd0"}', "'text'"),
        (r'{"type":"speak","text":"x","\ud800":1}', "a field name"),
        (r'{"type":"speak","text":"x","extra":[{"k":"\ud800"}]}', "'extra'"),
    ],
)
def test_unencodable_strings_are_refused_with_bad_text(message, where):
    code, text = _code(message)
    assert code == p.BAD_TEXT
    assert where in text and "U+" in text
    json.dumps(text).encode("utf-8")  # the error itself encodes


def test_encoded_surrogates_in_zmq_bytes_are_bad_text():
    # json.loads decodes bytes with surrogatepass: ED A0 80 would become "\ud800".
    code, _ = _code(b'{"type":"speak","text":"a\xed\xa0\x80"}')
    assert code == p.BAD_TEXT


def test_the_request_id_is_echoed_only_when_it_is_itself_valid():
    with pytest.raises(p.ProtocolError) as err:
        p.parse_command(r'{"type":"speak","id":"ok-1","text":"\ud800"}')
    assert err.value.request_id == "ok-1"
    with pytest.raises(p.ProtocolError) as err:
        p.parse_command(r'{"type":"speak","id":"x\ud800","text":"a"}')
    assert err.value.request_id is None


@pytest.mark.parametrize(
    "literal",
    [
        "9" * 5000,
        "-" + "9" * 21,
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        "-Infinity",
        "0." + "1" * 70,
    ],
)
def test_insane_numbers_are_bad_json(literal):
    code, text = _code(f'{{"type":"speak","id":{literal},"text":"x"}}')
    assert code == p.BAD_JSON, text


def test_sane_numbers_still_parse_to_a_field_error():
    code, _ = _code('{"type":"speak","id":' + "9" * 20 + ',"text":"x"}')
    assert code == p.BAD_FIELD  # 20 digits is a number; an id must be a string


@pytest.mark.parametrize("rid", ["abc\n", "abc\r\n", "\nabc", "a" * 33, "a b", ""])
def test_ids_are_full_matched(rid):
    code, _ = _code(json.dumps({"type": "speak", "id": rid, "text": "x"}))
    assert code == p.BAD_FIELD
    assert not REQUEST_ID.fullmatch(rid)


@pytest.mark.parametrize("name", ["trail\n", "trail\r", "-lead", "a/b", "x" * 65])
def test_voice_names_are_full_matched(name):
    for msg in (
        {"type": "save", "name": name},
        {"type": "load", "name": name},
        {"type": "speak", "text": "x", "voice": name},
    ):
        code, text = _code(json.dumps(msg))
        assert code == p.BAD_FIELD and "voice name" in text
    with pytest.raises(InputError):
        check_name(name)


def test_good_names_and_ids_still_pass():
    cmd = p.parse_command('{"type":"speak","id":"a.b_c:d-1","text":"hi","voice":"joe-1.v2"}')
    assert cmd.ref == "a.b_c:d-1" and cmd.voice == "joe-1.v2"
    assert check_name("trail") == "trail"


def test_escape_sequences_and_controls_are_stripped():
    assert safetext.one_line(ANSI) == "red title clear blink bell"
    assert safetext.strip_controls("one\r\ntwo\n\nthree\tfour") == "one\ntwo\n\nthree four"
    assert safetext.one_line("a\u202eb\u2066c\x00d\x7fe") == "abcde"
    assert safetext.one_line("unterminated \x1b]0;title") == "unterminated "
    assert safetext.one_line("plain é ü 日本 👋") == "plain é ü 日本 👋"


def test_dumps_always_encodes_and_counts_repairs():
    before = p.encode_repairs

    class Bad:
        def __str__(self):
            raise RuntimeError("no")

    msg = {
        "type": "metrics",
        "history": [{"id": "a", "text": "hi \ud800"}, {"id": "b", "text": "fine"}],
        "\udc00key": 1,
        "nan": float("nan"),
        "obj": Bad(),
    }
    text = p.dumps(msg)
    back = json.loads(text.encode("utf-8"))
    assert back["history"][0]["text"] == "hi \ufffd" and back["history"][1]["text"] == "fine"
    assert back["nan"] is None and back["obj"] == "<Bad>" and "\ufffdkey" in back
    assert p.encode_repairs == before + 1
    cyclic: dict = {"type": "x"}
    cyclic["self"] = cyclic
    json.loads(p.dumps(cyclic).encode("utf-8"))
    assert p.dumps({"type": "ok", "t": "plain"}) == '{"type":"ok","t":"plain"}'
    assert p.encode_repairs == before + 2


def test_watchdog_fails_only_requests_without_their_own_or_the_engines_progress():
    class R:
        def __init__(self, progress_ns):
            self.progress_ns = progress_ns

    now = [0]
    wd = RequestWatchdog(2.0, clock=lambda: now[0])
    old, fresh = R(0), R(0)
    now[0] = int(1.5e9)
    assert wd.stalled([old, fresh]) == []
    now[0] = int(2.5e9)
    fresh.progress_ns = int(2.4e9)
    wd.progress(int(1e9))  # the engine moved 1.5 s ago: nothing is stalled yet
    assert wd.stalled([old, fresh]) == []
    now[0] = int(3.1e9)
    assert wd.stalled([old, fresh]) == [old]
    assert wd.failed == 1
    assert RequestWatchdog(0).stalled([old]) == []  # 0 turns it off
    assert RequestWatchdog(30).period_s == 1.0 and RequestWatchdog(0.4).period_s == 0.1


def test_top_renders_request_text_without_escapes_or_markup():
    from vcstream import top

    st = top.DashState("ws://x/")
    st.on_connected({"type": "hello"})
    st.on_message({"type": "metrics", "uptime_s": 1, "history": []})
    st.on_message({"type": "accepted", "id": "r1", "mode": "queue"})
    st.on_message({"type": "done", "id": "r1", "text": ANSI + " [/] [bold]x", "audio_ms": 1})
    st.on_message({"type": "error", "code": "bad", "message": "\x1b[2Jgone"})
    console = Console(file=io.StringIO(), width=120, height=40, record=True, color_system=None)
    with st.lock:
        console.print(top.render(st, None, (120, 40)))
    shown = console.export_text()
    assert "red title clear blink bell [/] [bold]x" in shown
    assert "gone" in shown
    assert not any(c in shown for c in "\x1b\x07\x08\x9b")
