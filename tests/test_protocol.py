"""The wire protocol without I/O: bytes in, bytes out; plus the pure security and file checks."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from vcstream.hub import AudioFrame, Event
from vcstream.net import protocol as p
from vcstream.net.security import (
    bearer_token,
    is_loopback_host,
    origin_allowed,
    token_matches,
    zmq_endpoint_is_local,
)
from vcstream.net.webfiles import content_type_of, read_web_file, resolve_request_path


def _frame(**kw) -> AudioFrame:
    base = dict(
        seq=7,
        request_id="req-1",
        sample_rate_hz=22050,
        timestamp_ns=123_456_789_012,
        pcm=np.array([0.0, 0.5, -1.0, 1.5, -0.25], np.float32),
    )
    base.update(kw)
    return AudioFrame(**base)


# ---- audio frames ---------------------------------------------------------------------
def test_audio_header_layout_byte_by_byte():
    data = p.encode_audio(_frame(silence=False, end_of_utterance=True))
    assert len(data) == 64 + 2 * 5
    assert data[0:4] == b"VCSA"
    assert data[4] == 1  # version
    assert data[5] == 64  # header bytes
    assert int.from_bytes(data[6:8], "little") == 0x0002  # end of utterance
    assert int.from_bytes(data[8:16], "little") == 7
    assert int.from_bytes(data[16:24], "little") == 123_456_789_012
    assert int.from_bytes(data[24:28], "little") == 22050
    assert int.from_bytes(data[28:30], "little") == 1  # channels
    assert int.from_bytes(data[30:32], "little") == 1  # PCM16
    assert data[32:64] == b"req-1" + b"\0" * 27
    samples = struct.unpack("<5h", data[64:])
    assert samples == (0, 16384, -32767, 32767, -8192)  # clipped, rounded, x32767


def test_audio_roundtrip_and_flags():
    for silence, end in ((False, False), (True, False), (False, True), (True, True)):
        frame = _frame(silence=silence, end_of_utterance=end)
        header, pcm = p.decode_audio(p.encode_audio(frame))
        assert header.seq == 7 and header.request_id == "req-1"
        assert header.sample_rate_hz == 22050 and header.timestamp_ns == 123_456_789_012
        assert (header.silence, header.end_of_utterance) == (silence, end)
        assert pcm.dtype == np.int16 and pcm.tolist() == [0, 16384, -32767, 32767, -8192]


def test_audio_parts_are_header_then_pcm():
    header, pcm = p.encode_audio_parts(_frame())
    assert len(header) == p.AUDIO_HEADER_BYTES
    assert header + pcm == p.encode_audio(_frame())


def test_idle_frame_has_empty_request_id_and_long_ids_are_cut_to_fit():
    header, _ = p.decode_audio(p.encode_audio(_frame(request_id="", silence=True)))
    assert header.request_id == "" and header.silence
    header, _ = p.decode_audio(p.encode_audio(_frame(request_id="x" * 64)))
    assert header.request_id == "x" * 32


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda b: b[:40], "shorter"),
        (lambda b: b"XXXX" + b[4:], "magic"),
        (lambda b: b[:4] + b"\x09" + b[5:], "version"),
        (lambda b: b + b"\x01", "odd"),
        (lambda b: b[:30] + b"\x07\x00" + b[32:], "sample format"),
    ],
)
def test_decode_audio_rejects_garbage(mutate, fragment):
    data = mutate(p.encode_audio(_frame()))
    with pytest.raises(p.ProtocolError, match=fragment) as info:
        p.decode_audio(data)
    assert info.value.code == p.BAD_MESSAGE


def test_message_header_roundtrip():
    h = p.pack_message_header(42, 99)
    assert len(h) == 24 and h[:4] == b"VCSM" and h[4] == 1 and h[5] == 24
    assert p.unpack_message_header(h) == (42, 99)
    with pytest.raises(p.ProtocolError):
        p.unpack_message_header(b"VCSA" + h[4:])


# ---- control messages -----------------------------------------------------------------
def test_parse_speak_variants():
    cmd = p.parse_command('{"type":"speak","id":"a1","text":"Hello."}')
    assert cmd == p.Speak(ref="a1", text="Hello.", phonemes=None, mode="queue", voice=None)
    cmd = p.parse_command(
        b'{"type":"speak","phonemes":"h\xc9\x99l\xcb\x88o\xca\x8a","mode":"interrupt","voice":"ann"}'
    )
    assert cmd.phonemes == "həlˈoʊ" and cmd.mode == "interrupt" and cmd.voice == "ann"
    assert cmd.ref is None


def test_parse_other_commands():
    assert p.parse_command('{"type":"cancel","id":"r9"}') == p.Cancel(ref="r9")
    assert p.parse_command('{"type":"cancel"}') == p.Cancel(ref=None)
    assert p.parse_command('{"type":"freeze"}') == p.Freeze(ref=None)
    assert p.parse_command('{"type":"unfreeze","id":"x"}') == p.Unfreeze(ref="x")
    assert p.parse_command('{"type":"reset"}') == p.Reset(ref=None)
    assert p.parse_command('{"type":"save","name":"ann"}') == p.Save(ref=None, name="ann")
    assert p.parse_command('{"type":"load","name":"ann"}') == p.Load(ref=None, name="ann")
    assert p.parse_command('{"type":"list"}') == p.ListVoices(ref=None)
    assert p.parse_command('{"type":"status","id":"s"}') == p.Status(ref="s")
    assert p.parse_command('{"type":"auth","token":"t"}') == p.Auth(ref=None, token="t")
    sub = p.parse_command('{"type":"subscribe","audio":false}')
    assert sub == p.Subscribe(ref=None, audio=False, events=None, status=None)
    assert {p.command_name(p.parse_command(f'{{"type":"{t}"}}')) for t in ("list", "status")} == {
        "list",
        "status",
    }


@pytest.mark.parametrize(
    "data, code, ref",
    [
        ('{"type":"speak", "text": "hi"', p.BAD_JSON, None),
        ("not json at all", p.BAD_JSON, None),
        (b"\xff\xfe\x00garbage", p.BAD_JSON, None),
        ("[1, 2, 3]", p.BAD_MESSAGE, None),
        ('"speak"', p.BAD_MESSAGE, None),
        ('{"type":"dance","id":"d1"}', p.UNKNOWN_TYPE, "d1"),
        ('{"id":"n1"}', p.BAD_FIELD, "n1"),
        ('{"type":7}', p.BAD_FIELD, None),
        ('{"type":"speak","id":"s1","txt":"hi"}', p.BAD_FIELD, "s1"),
        ('{"type":"speak","id":"s2"}', p.BAD_FIELD, "s2"),
        ('{"type":"speak","id":"s3","text":"a","phonemes":"b"}', p.BAD_FIELD, "s3"),
        ('{"type":"speak","id":"s4","text":42}', p.BAD_FIELD, "s4"),
        ('{"type":"speak","id":"s5","text":"   "}', p.BAD_FIELD, "s5"),
        ('{"type":"speak","id":"s6","text":"hi","mode":"shout"}', p.BAD_FIELD, "s6"),
        ('{"type":"speak","id":"s7","text":"hi","voice":""}', p.BAD_FIELD, "s7"),
        ('{"type":"speak","id":"bad id!","text":"hi"}', p.BAD_FIELD, None),
        ('{"type":"speak","id":"' + "x" * 33 + '","text":"hi"}', p.BAD_FIELD, None),
        ('{"type":"speak","id":7,"text":"hi"}', p.BAD_FIELD, None),
        ('{"type":"save","id":"v1"}', p.BAD_FIELD, "v1"),
        ('{"type":"load","name":" "}', p.BAD_FIELD, None),
        ('{"type":"subscribe","audio":1}', p.BAD_FIELD, None),
        ('{"type":"speak","id":"L","text":"' + "a" * 2001 + '"}', p.TOO_LONG, "L"),
        ("[" * 100_000 + "]" * 100_000, p.TOO_LARGE, None),
    ],
)
def test_parse_errors_have_specific_codes(data, code, ref):
    with pytest.raises(p.ProtocolError) as info:
        p.parse_command(data, max_bytes=65536, max_text_chars=2000)
    assert info.value.code == code, str(info.value)
    assert info.value.request_id == ref
    assert str(info.value)  # a message for the user


def test_size_limit_counts_utf8_bytes():
    text = "é" * 20_000  # 40,000 bytes in UTF-8
    msg = json.dumps({"type": "speak", "text": text}, ensure_ascii=False)
    with pytest.raises(p.ProtocolError) as info:
        p.parse_command(msg, max_bytes=30_000, max_text_chars=100_000)
    assert info.value.code == p.TOO_LARGE
    assert p.parse_command(msg, max_bytes=65536, max_text_chars=100_000).text == text


def test_deeply_nested_json_is_bad_json_not_a_crash():
    with pytest.raises(p.ProtocolError) as info:
        p.parse_command("[" * 50_000 + "]" * 50_000, max_bytes=200_000)
    assert info.value.code in (p.BAD_JSON, p.BAD_MESSAGE)


# ---- messages out -----------------------------------------------------------------------
def test_event_encoding_is_strict_json():
    ev = Event("metrics", None, {"x": float("nan"), "n": np.int64(3), "v": np.float32(0.5)})
    out = json.loads(p.encode_event(ev))
    assert out["type"] == "metrics" and out["x"] is None and out["n"] == 3 and out["v"] == 0.5
    assert "id" not in out and isinstance(out["timestamp_ns"], int)
    done = json.loads(p.encode_event(Event("done", "r1", {"audio_ms": 12.5})))
    assert done["id"] == "r1" and done["audio_ms"] == 12.5


def test_error_and_reply_shapes():
    assert p.error_message("bad_json", "m") == {"type": "error", "code": "bad_json", "message": "m"}
    e = p.error_message("rate_limited", "m", "r1", "speak", retry_after_ms=200)
    assert e == {
        "type": "error",
        "code": "rate_limited",
        "message": "m",
        "id": "r1",
        "to": "speak",
        "retry_after_ms": 200,
    }
    assert p.reply_message("status", None, status={}) == {
        "type": "reply",
        "to": "status",
        "status": {},
    }


# ---- security checks ----------------------------------------------------------------------
def test_loopback_detection():
    for host in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback_host(host), host
    for host in ("0.0.0.0", "", "::", "192.168.1.10", "example.org", "*"):
        assert not is_loopback_host(host), host
    assert zmq_endpoint_is_local("tcp://127.0.0.1:5555")
    assert zmq_endpoint_is_local("tcp://localhost:*")
    assert zmq_endpoint_is_local("ipc:///tmp/vcstream.sock")
    assert not zmq_endpoint_is_local("tcp://*:5555")
    assert not zmq_endpoint_is_local("tcp://0.0.0.0:5555")
    assert not zmq_endpoint_is_local("tcp://eth0:5555")


def test_tokens():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token(None) is None
    assert bearer_token("Bearer ") is None
    assert token_matches("s3cret", "s3cret")
    assert not token_matches("s3cre", "s3cret") and not token_matches(None, "s3cret")
    assert not token_matches("", "s3cret")


@pytest.mark.parametrize(
    "origin, host, allowed, loopback, ok",
    [
        (None, "127.0.0.1:8765", [], True, True),  # not a browser
        ("http://127.0.0.1:8765", "127.0.0.1:8765", [], True, True),  # the daemon's own page
        ("http://localhost:8765", "localhost:8765", [], True, True),
        ("https://evil.example", "127.0.0.1:8765", [], True, False),
        ("http://127.0.0.1:9999", "127.0.0.1:8765", [], True, False),  # another local port
        ("http://evil.example:8765", "evil.example:8765", [], True, False),  # DNS rebinding
        ("http://stage.lan:8765", "stage.lan:8765", [], False, True),  # exposed, own page
        ("https://show.example", "127.0.0.1:8765", ["https://show.example"], True, True),
        ("https://show.example/", "127.0.0.1:8765", ["https://show.example"], True, True),
        ("null", "127.0.0.1:8765", [], True, False),
        ("file://", "127.0.0.1:8765", [], True, False),
        ("https://anything.example", "127.0.0.1:8765", ["*"], True, True),
    ],
)
def test_origin_allow_list(origin, host, allowed, loopback, ok):
    assert origin_allowed(origin, host, allowed, server_is_loopback=loopback) is ok


# ---- static files ------------------------------------------------------------------------
@pytest.fixture
def web_tree(tmp_path):
    web = tmp_path / "web"
    (web / "js").mkdir(parents=True)
    (web / "index.html").write_text("<h1>monitor</h1>")
    (web / "js" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("private")
    (web / "escape").symlink_to(tmp_path / "secret.txt")
    return web


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/js/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/..\\secret.txt",
        "/%5c..%5csecret.txt",
        "/escape",
        "/index.html%00.js",
    ],
)
def test_no_path_traversal(web_tree, path):
    resolved = resolve_request_path(web_tree, path)
    assert resolved is None or resolved.is_relative_to(web_tree.resolve())
    f = read_web_file(web_tree, path)
    assert f.status in (400, 404) and b"private" not in f.body


def test_files_and_types(web_tree):
    f = read_web_file(web_tree, "/")
    assert (
        f.status == 200 and f.body == b"<h1>monitor</h1>" and f.content_type.startswith("text/html")
    )
    f = read_web_file(web_tree, "/js/app.js?v=3")
    assert f.status == 200 and f.content_type.startswith("text/javascript")
    assert read_web_file(web_tree, "/missing.css").status == 404
    assert content_type_of(web_tree / "x.css").startswith("text/css")
    assert content_type_of(web_tree / "x.svg") == "image/svg+xml"
    assert content_type_of(web_tree / "x.unknownext") == "application/octet-stream"


def test_cancel_all_and_its_conflict_with_an_id():
    assert p.parse_command('{"type":"cancel","all":true}') == p.Cancel(ref=None, all=True)
    assert p.parse_command('{"type":"cancel","all":false}') == p.Cancel(ref=None)
    with pytest.raises(p.ProtocolError, match="not both") as err:
        p.parse_command('{"type":"cancel","id":"r1","all":true}')
    assert err.value.code == p.BAD_FIELD
    with pytest.raises(p.ProtocolError) as err:
        p.parse_command('{"type":"cancel","all":"yes"}')
    assert err.value.code == p.BAD_FIELD
