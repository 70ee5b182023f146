"""`servesim app`: the command that serves the web app."""

from __future__ import annotations

import pytest

from app.cli import MAIN, streamlit_command
from sim.commands.cli import main


def test_the_app_command_is_listed(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "app" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["app", "--port", "0"], "--port 0 is not a port number"),
    (["app", "--port", "70000"], "--port 70000 is not a port number"),
    (["app", "--max-upload-mb", "0"], "--max-upload-mb must be at least 1"),
])
def test_bad_options_are_named_without_starting_anything(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_server_runs_headless_on_the_given_port_with_the_upload_limit():
    command = streamlit_command(8600, "0.0.0.0", 64)
    assert command[1:5] == ["-m", "streamlit", "run", str(MAIN)]
    flags = dict(zip(command[5::2], command[6::2]))
    assert flags["--server.port"] == "8600"
    assert flags["--server.address"] == "0.0.0.0"
    assert flags["--server.headless"] == "true"  # never tries to open a browser
    assert flags["--server.maxUploadSize"] == "64"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert MAIN.is_file()
