import subprocess
import sys

import pytest

from xrh.cli import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_simulate_is_registered_through_entry_points():
    assert {"settings", "tables", "runs", "simulate"} <= set(_subcommands())


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: xrh " + command in capsys.readouterr().out


def test_console_script_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "xrh.cli", "settings"],
        capture_output=True,
        text=True,
        env={"XRH_DATA_ROOT": str(tmp_path), "PATH": ""},
        check=True,
    )
    assert f"warehouse  {tmp_path}/warehouse.sqlite" in result.stdout
