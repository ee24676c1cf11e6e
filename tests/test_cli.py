import argparse
import re
import subprocess
import sys

import pytest

from xrh.cli import build_parser, main


def _commands(parser=None, prefix=()) -> list[tuple[str, ...]]:
    """Every command path, nested ones included (``("ingest", "csv")``)."""
    parser = parser or build_parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append((*prefix, name))
                found.extend(_commands(child, (*prefix, name)))
    return found


def test_packages_register_their_commands_through_entry_points():
    assert {
        ("settings",),
        ("tables",),
        ("runs",),
        ("simulate",),
        ("ingest", "csv"),
        ("ingest", "dicom"),
        ("ingest", "cache"),
        ("download",),
        ("build",),
        ("dbt",),
        ("split",),
    } <= set(_commands())


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: xrh " + " ".join(command) in capsys.readouterr().out


def test_console_script_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "xrh.cli", "settings"],
        capture_output=True,
        text=True,
        env={"XRH_DATA_ROOT": str(tmp_path), "PATH": ""},
        check=True,
    )
    assert re.search(rf"warehouse +. {re.escape(str(tmp_path))}/warehouse.sqlite +. XRH_WAREHOUSE", result.stdout)


def test_every_option_with_a_default_names_it_in_its_help():
    unnamed = []

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, (*prefix, name))
            elif action.option_strings and action.default not in (None, argparse.SUPPRESS, False):
                if "default" not in (action.help or "").lower():
                    unnamed.append((" ".join(prefix), action.option_strings))

    walk(build_parser())
    assert not unnamed


def test_the_command_line_starts_without_importing_torch():
    """Every command's parser (and its defaults) loads without torch: `xrh settings` or `xrh ingest` start fast, and
    run where torch is not installed."""
    code = "import sys; from xrh.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
