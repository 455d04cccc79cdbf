"""Every ``rltrader`` command's error contract (``rltrader.tools.cli``'s docstring): bad
arguments are argparse usage errors (exit 2) found before any work; bad input is one line
``<command>: [<file>: ]<problem>`` on stderr and exit 2, never a traceback; a closed stdout
stops quietly (141); anything else keeps its traceback."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _data import crypto_file, sample

from rltrader.data.samples import AAPL_PAIR_MESSAGE, sample_path
from rltrader.tools import bench, cli, simulate
from rltrader.tools.cli import BAD_INPUT, BROKEN_PIPE, MAX_LEVELS, main

MESSAGE = str(sample_path(AAPL_PAIR_MESSAGE))
SMALL = (Path(simulate.__file__).parent.parent / "sim" / "presets" / "small.toml").read_text()
TARDIS = str(crypto_file("tardis", "binance-futures_book_snapshot_5_BTCUSDT.csv"))


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``argv``; it must exit 2 with exactly one line on stderr, which is returned."""
    assert main(argv) == BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def _usage(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``argv``; it must be argparse's usage error (exit 2); returns the error line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any benchmark, simulated day or training that starts fails the test."""
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the work started before the arguments were checked")

    monkeypatch.setattr(bench, "run", forbidden)
    monkeypatch.setattr(simulate.Market, "run", forbidden)
    from rltrader.training import train

    monkeypatch.setattr(train, "train", forbidden)


# ---------------------------------------------------------------------------------------
# simulate


def _config(tmp_path: Path, old: str, new: str) -> str:
    assert old in SMALL
    path = tmp_path / "market.toml"
    path.write_text(SMALL.replace(old, new, 1))
    return str(path)


@pytest.mark.parametrize(("old", "new", "problem"), [
    ("dt_ns = 100_000_000", "dt_ns = 0", "dt_ns"),
    ("copies = 4", "copies = -1", "copies"),
    ("tick_size = 0.01", 'tick_size = "a"', "tick_size"),
    ("count = 50", "count = 10000000000", ""),
    ("open = ", "open = \nopen = ", "line"),          # invalid TOML (a key twice)
    ("[noise]", "[noise]\nbogus = 1", "bogus"),
])
def test_simulate_bad_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         no_work: None, old: str, new: str,
                                         problem: str) -> None:
    path = _config(tmp_path, old, new)
    line = _one_line(capsys, ["simulate", "--config", path, "--no-progress"])
    assert line.startswith(f"simulate: {path}: ") and problem in line


def test_simulate_missing_or_directory_config(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.toml")
    assert _one_line(capsys, ["simulate", "--config", missing]) == (
        f"simulate: {missing}: No such file or directory")
    assert _one_line(capsys, ["simulate", "--config", str(tmp_path)]) == (
        f"simulate: {tmp_path}: Is a directory")


def test_simulate_type_and_overflow_errors_of_the_config_name_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever the config checks miss and the core refuses (``Books.__init__``'s
    ``OverflowError``) is the config's fault, said in one line."""
    def too_big(*args: object, **kwargs: object) -> None:
        raise OverflowError("value too large to convert to int")

    monkeypatch.setattr(simulate, "Market", too_big)
    line = _one_line(capsys, ["simulate", "small"])
    assert line == ("simulate: preset 'small': a value of the wrong type or size "
                    "(OverflowError: value too large to convert to int)")


def test_simulate_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str],
                                                 no_work: None) -> None:
    assert "unknown preset 'nopreset'" in _usage(capsys, ["simulate", "nopreset"])
    assert "--copies: must be >= 1, got 0" in _usage(capsys, ["simulate", "--copies", "0"])
    assert "--seed: must be >= 0" in _usage(capsys, ["simulate", "--seed", "-1"])


def test_simulate_unusable_out_fails_before_the_day(tmp_path: Path, no_work: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _one_line(capsys, ["simulate", "small", "--out", str(blocker / "day" / "x")])
    assert line.startswith(f"simulate: {blocker}")


# ---------------------------------------------------------------------------------------
# facts


def test_facts_unreadable_input_is_one_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert _one_line(capsys, ["facts", "/nonexistent"]) == (
        "facts: /nonexistent: No such file or directory")
    assert _one_line(capsys, ["facts", str(tmp_path)]) == f"facts: {tmp_path}: Is a directory"
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert _one_line(capsys, ["facts", str(text)]).startswith(
        f"facts: {text}: not a LOBSTER message file")


@pytest.mark.parametrize(("option", "value"), [
    ("--interval-ms", "0"), ("--interval-ms", "-5"), ("--levels", "0"), ("--levels", "-1"),
    ("--levels", str(MAX_LEVELS + 1)), ("--tick-size", "0"), ("--tick-size", "x"),
])
def test_facts_bad_numbers_are_usage_errors(capsys: pytest.CaptureFixture[str], option: str,
                                            value: str) -> None:
    assert f"argument {option}:" in _usage(capsys, ["facts", MESSAGE, option, value])


def test_facts_unusable_out_fails_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from rltrader.analysis import facts

    monkeypatch.setattr(facts, "lobster_market", lambda *a, **k: pytest.fail("work started"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _one_line(capsys, ["facts", MESSAGE, "--out", str(blocker / "report")])
    assert line.startswith(f"facts: {blocker}")


# ---------------------------------------------------------------------------------------
# bench and train


def test_bench_checks_its_output_before_running(capsys: pytest.CaptureFixture[str],
                                                no_work: None) -> None:
    assert _one_line(capsys, ["bench", "--json", "/nonexistent/dir/x.json", "--quick"]) == (
        "bench: /nonexistent/dir/x.json: No such file or directory")


def test_the_output_check_leaves_no_file(tmp_path: Path) -> None:
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    old.write_text("kept")
    cli._check_writable(str(new))
    cli._check_writable(str(old))
    assert not new.exists() and old.read_text() == "kept"


def test_an_internal_error_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench reads no input: a ValueError inside it is a bug, not bad input."""
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(bench, "run", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["bench", "--quick"])


@pytest.mark.parametrize("argv", [
    ["--timesteps", "0"], ["--timesteps", "-5"], ["--timesteps", "many"], ["--n-envs", "0"],
    ["--n-agents", "0"], ["--horizon", "0"], ["--eval-episodes", "0"],
    ["--checkpoint-every", "0"], ["--imitate-steps", "-1"], ["--seed", "-1"],
    ["--market", "nope"],
])
def test_train_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str],
                                              no_work: None, argv: list[str]) -> None:
    assert f"argument {argv[0]}:" in _usage(capsys, ["train", *argv])


# ---------------------------------------------------------------------------------------
# replay: argument errors are not blamed on the file


@pytest.mark.parametrize(("argv", "problem"), [
    (["lobster", MESSAGE, "--tick-size", "abc"], "--tick-size: 'abc' is not a positive"),
    (["lobster", MESSAGE, "--tick-size", "0"], "--tick-size: '0' is not a positive"),
    (["lobster", MESSAGE, "--tick-size", "-5"], "--tick-size: '-5' is not a positive"),
    (["lobster", MESSAGE, "--levels", "-3"], "--levels: must be >= 1, got -3"),
    (["lobster", MESSAGE, "--levels", "0"], "--levels: must be >= 1, got 0"),
    (["lobster", MESSAGE, "--levels", "100000"], "--levels: must be <= 1,000"),
    (["binance", TARDIS, "--levels", "0"], "--levels: must be >= 1, got 0"),
    (["binance", TARDIS, "--window", "0"], "--window: must be >= 64, got 0"),
    (["tardis", TARDIS, "--window", "100"], "--window: must be a multiple of 64"),
    (["tardis", TARDIS, "--tick-size", "1e-2"], "--tick-size: '1e-2' is not a positive"),
    (["tardis", TARDIS, "--lot-size", "-1"], "--lot-size: '-1' is not a positive"),
])
def test_replay_argument_errors_are_usage_errors(capsys: pytest.CaptureFixture[str],
                                                 argv: list[str], problem: str) -> None:
    line = _usage(capsys, ["replay", *argv])
    assert problem in line and MESSAGE not in line and TARDIS not in line


@pytest.mark.parametrize(("argv", "problem"), [
    (["lobster", MESSAGE, "--tick-size", "0.5"],
     "replay: --tick-size: lobster takes a whole number of price units ($0.0001), got '0.5'"),
    (["itch", MESSAGE, "--tick-size", "1.0"], "replay: --tick-size: itch takes a whole"),
    (["lobster", MESSAGE, "--window", "64"], "replay: lobster takes MESSAGE [ORDERBOOK]; "),
    (["lobster", MESSAGE, "--symbol", "AAPL"], "replay: LOBSTER files hold one symbol; "),
])
def test_replay_options_of_another_format_name_the_option(
        capsys: pytest.CaptureFixture[str], argv: list[str], problem: str) -> None:
    assert _one_line(capsys, ["replay", *argv]).startswith(problem)


def test_replay_unwritable_dump_fails_first(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from rltrader.data import replay_crypto

    monkeypatch.setattr(replay_crypto, "load", lambda *a, **k: pytest.fail("work started"))
    assert _one_line(capsys, ["replay", "tardis", TARDIS, "--dump-l2", "/nonexistent/l2"]) == (
        "replay: /nonexistent/l2: No such file or directory")


def test_replay_a_symbol_not_in_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    itch = str(sample("itch50/keelan_200msg_orderflow.itch50"))
    assert _one_line(capsys, ["replay", "itch", itch, "--tick-size", "1", "--symbol",
                              "NOPE"]) == (
        f"replay: {itch}: no stock 'NOPE' in the file (no stock directory record names it)")
    assert _one_line(capsys, ["replay", "tardis", TARDIS, "--symbol", "NOPE"]) == (
        f"replay: {TARDIS}: no feed event for symbol 'NOPE'")


def test_replay_a_symbol_in_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(sample("itch50/bbekele_first1000_directory.itch50"))
    assert main(["replay", "itch", path, "--symbol", "AAPL"]) == 0
    assert "(AAPL)" in capsys.readouterr().out


def test_replay_levels_given_are_levels_shown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "tardis", TARDIS, "--levels", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.strip()[:1].isdigit() and "|" in line]
    assert [row.split()[0] for row in rows] == ["1", "2"]


def test_traceback_switch_re_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
    with pytest.raises(FileNotFoundError):
        main(["facts", "/nonexistent"])


# ---------------------------------------------------------------------------------------
# a closed stdout


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")


def test_a_closed_stdout_stops_quietly(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["replay", "lobster", MESSAGE]) == BROKEN_PIPE
    assert main(["facts", MESSAGE, "--interval-ms", "1000"]) == BROKEN_PIPE
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


def test_a_closed_pipe_in_a_real_process() -> None:
    """``rltrader replay lobster M | head -c 10``, with the reader gone before it writes."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "rltrader.tools.cli", "replay",
                               "lobster", MESSAGE], stdout=write, stderr=subprocess.PIPE,
                              timeout=120, check=False)
    finally:
        os.close(write)
    assert done.returncode == BROKEN_PIPE and done.stderr == b""
