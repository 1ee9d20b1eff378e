"""``stoker ui`` refuses bad options with a message that says what to do."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")
from click.testing import CliRunner

from stoker.cli import main


def test_ui_is_a_command_with_its_options():
    r = CliRunner().invoke(main, ["ui", "--help"])
    assert r.exit_code == 0
    for option in ("--store", "--host", "--port", "--allow-rerun", "--export"):
        assert option in r.output
    assert "ui" in CliRunner().invoke(main, ["--help"]).output


def test_bad_port_and_a_port_in_use(tmp_path):
    r = CliRunner().invoke(main, ["ui", "--port", "99999"])
    assert r.exit_code == 1 and "use 1 to 65535" in r.output
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = CliRunner().invoke(main, ["ui", "--port", str(port)])
    assert r.exit_code == 1 and "try another --port" in r.output
