"""The ``rltrader`` command: demo, bench, profile, replay, simulate, facts, train, serve,
analytics.

Exit status, every command: 0 done; 1 a known-answer check failed (``replay``, reported on
stdout); 2 bad arguments or bad input. Bad arguments are argparse's usage errors (numbers
are checked by the ``type=`` functions below, before any work starts; ``replay``'s options
that depend on the format end in one line naming the option, not a file). Bad input ends in
one line ``<command>: <file>: <problem>`` (or ``<command>: <problem>`` where no file is
involved) on stderr, never a traceback. Which exceptions count as bad input is per command
(:data:`_READ_ERRORS` for the commands that read files: what the readers raise for a
missing, malformed or truncated file; only ``OSError`` for the others, whose inputs are
paths to write): anything else is a bug and keeps its traceback. ``simulate`` turns the
``TypeError``/``OverflowError`` of a config value (a string where a number belongs, a count
too large for the core) into a ``ValueError`` naming the file while it builds the market,
never while it runs. ``RLTRADER_TRACEBACK=1`` re-raises instead, to see where a one-line
error came from. A closed stdout (``rltrader replay ... | head``) stops the command quietly
with status 141, as a shell reports a process that SIGPIPE ended.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: What a malformed, truncated or missing input raises (``json.JSONDecodeError`` and
#: ``tomllib.TOMLDecodeError`` are ``ValueError``\ s; ``gzip.BadGzipFile`` an ``OSError``).
_READ_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, EOFError, zlib.error)

#: Exit status for bad arguments or input (argparse uses 2 for usage errors too).
BAD_INPUT = 2

#: Exit status when stdout is closed under us (128 + SIGPIPE, as a shell reports it).
BROKEN_PIPE = 141

#: Most book levels a command shows, dumps or records (each level is a column per row).
MAX_LEVELS = 1000

#: Largest dense price window (ticks) ``replay --window`` accepts (2**24: hundreds of MB).
MAX_WINDOW = 1 << 24

#: Set to 1 to get the traceback of an error otherwise reported in one line.
TRACEBACK_ENV = "RLTRADER_TRACEBACK"


@dataclass(frozen=True)
class Command:
    """A command's function with the error contract of the module docstring: the
    ``errors`` it raises count as bad input, reported as ``<name>: <file>: <problem>``
    with the files that ``inputs`` names."""

    name: str
    run: Callable[[argparse.Namespace], int]
    errors: tuple[type[BaseException], ...] = (OSError,)
    inputs: Callable[[argparse.Namespace], list[str]] = lambda args: []

    def __call__(self, args: argparse.Namespace) -> int:
        try:
            return self.run(args)
        except BrokenPipeError:
            raise  # main's: a closed stdout is not bad input
        except self.errors as exc:
            if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
                raise
            print(f"{self.name}: {_one_line(exc, self.inputs(args))}", file=sys.stderr)
            return BAD_INPUT


# ---------------------------------------------------------------------------------------
# argument types: a bad value is argparse's usage error (exit 2) before any work


def _venues(text: str) -> tuple[tuple[str, int, int], ...]:
    """``NAME:MAKER:TAKER,...`` (fees in ppm) for ``serve --venues``."""
    out = []
    for part in text.split(","):
        fields = part.split(":")
        try:
            name, maker, taker = fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise argparse.ArgumentTypeError(
                f"venues are NAME:MAKER_PPM:TAKER_PPM, comma-separated, got {part!r}") from None
        if len(fields) != 3 or not (name.isascii() and name.isalnum()) or not (
                -1_000_000 <= maker <= 1_000_000 and -1_000_000 <= taker <= 1_000_000):
            raise argparse.ArgumentTypeError(f"bad venue {part!r}: NAME (letters, digits) "
                                             ":MAKER_PPM:TAKER_PPM")
        out.append((name.upper(), maker, taker))
    if len(out) < 2 or len({n for n, _, _ in out}) != len(out):
        raise argparse.ArgumentTypeError("--venues needs at least two distinct venues")
    return tuple(out)


def _int_at_least(lowest: int, highest: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for integers in ``lowest..highest``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be >= {lowest}, got {value}")
        if highest is not None and value > highest:
            raise argparse.ArgumentTypeError(f"must be <= {highest:,}, got {value:,}")
        return value

    parse.__name__ = "integer"
    return parse


_positive = _int_at_least(1)
_non_negative = _int_at_least(0)
_levels = _int_at_least(1, MAX_LEVELS)


def _window(text: str) -> int:
    """``--window``: ticks, a positive multiple of 64 (the core's rule), at most 2**24."""
    value = _int_at_least(64, MAX_WINDOW)(text)
    if value % 64:
        raise argparse.ArgumentTypeError(f"must be a multiple of 64, got {value}")
    return value


def _decimal_step(text: str) -> str:
    """A tick or lot size: a positive plain decimal (``100``, ``0.01``; no sign, no
    exponent, as the crypto readers' grids take it), kept as text."""
    if re.fullmatch(r"\d+(\.\d*)?|\.\d+", text) is None or not text.strip("0."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive decimal number "
                                         "(digits and one optional point)")
    return text


def _preset(text: str) -> str:
    """A shipped market preset's name."""
    from rltrader.sim.config import preset_names

    if text not in preset_names():
        raise argparse.ArgumentTypeError(f"unknown preset {text!r} (choose from "
                                         f"{', '.join(preset_names())})")
    return text


def _check_writable(path: str) -> None:
    """Fail now (``OSError`` naming ``path``) if the output file cannot be written, rather
    than after the work; a file that did not exist is not left behind."""
    existed = os.path.lexists(path)
    with open(path, "a"):
        pass
    if not existed:
        os.remove(path)


def _cmd_demo(args: argparse.Namespace) -> int:
    from rltrader.tools import demo

    return demo.main(out_dir=args.out, plot=not args.no_plot, data_dir=args.data)


def _cmd_bench(args: argparse.Namespace) -> int:
    from rltrader.tools import bench

    if args.json not in (None, "-"):
        _check_writable(args.json)
    report = bench.run(quick=args.quick, progress=not args.json)
    if args.json:
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
            print(bench.format_report(report))
            print(f"\nwrote {args.json}")
    else:
        print(bench.format_report(report))
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from rltrader.tools import profiling

    for title, messages, n_books in profiling.workloads_to_profile(args.workload, args.quick):
        rows = profiling.profile_messages(messages, n_books)
        print(profiling.format_rows(title, rows))
        print()
    return 0


def _one_line(exc: BaseException, files: list[str]) -> str:
    """``<file>: <problem>`` on one line. The readers' messages start with their file, the
    OS's carry it in ``filename``; anything else (an argument error, or a problem no reader
    placed) is put on the files given, so that the line still says what was read."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, ValueError):
        text = f"{type(exc).__name__}: {text}"
    if not files or any(text.startswith(f"{f}: ") for f in files) or _is_usage(text):
        return text
    return f"{', '.join(files)}: {text}"


def _is_usage(text: str) -> bool:
    """An error about the arguments rather than a file (it names an option)."""
    return " --" in f" {text}"


def _replay_inputs(args: argparse.Namespace) -> list[str]:
    return [*args.path, *(f for f in (args.snapshot, args.end_snapshot, args.mapping) if f)]


def _check_replay(args: argparse.Namespace) -> str | None:
    """Argument problems that depend on the format (argparse checks each value alone);
    ``_replay`` raises them, reported in one line that names the option, not a file."""
    from rltrader.data import replay_crypto

    if args.format in replay_crypto.MAPPED_FORMATS:
        if args.mapping is None:
            return f"{args.format} needs --mapping MAPPING.toml (the file's column mapping)"
        if len(args.path) != 1 or any(value is not None for value in (
                args.snapshot, args.end_snapshot, args.symbol)):
            return (f"{args.format} takes one FILE; --snapshot, --end-snapshot and --symbol "
                    "do not apply")
        return None
    if args.mapping is not None:
        return f"--mapping applies to {', '.join(replay_crypto.MAPPED_FORMATS)} only"
    if args.format in replay_crypto.CRYPTO_FORMATS:
        return None
    files = "MESSAGE [ORDERBOOK]" if args.format == "lobster" else "one file"
    crypto = (args.snapshot, args.end_snapshot, args.lot_size, args.window)
    if len(args.path) > (2 if args.format == "lobster" else 1) \
            or any(value is not None for value in crypto):
        return (f"{args.format} takes {files}; --snapshot, --end-snapshot, --lot-size and "
                "--window do not apply")
    if args.format == "lobster" and args.symbol is not None:
        return "LOBSTER files hold one symbol; --symbol does not apply"
    if args.tick_size is not None and not args.tick_size.isdigit():
        return (f"--tick-size: {args.format} takes a whole number of price units ($0.0001), "
                f"got {args.tick_size!r}")
    return None


def _replay(args: argparse.Namespace) -> int:
    from rltrader.data import replay, replay_crypto

    problem = _check_replay(args)
    if problem:
        raise ValueError(problem)
    if args.dump_l2:
        _check_writable(args.dump_l2)
    if args.format in (*replay_crypto.CRYPTO_FORMATS, *replay_crypto.MAPPED_FORMATS):
        return replay_crypto.main(
            args.format, args.path, symbol=args.symbol,
            levels=args.levels if args.levels is not None else 5,
            dump_l2=args.dump_l2, tick_size=args.tick_size, lot_size=args.lot_size,
            snapshot=args.snapshot, end_snapshot=args.end_snapshot,
            window=args.window if args.window is not None else replay_crypto.WINDOW,
            mapping=args.mapping)
    message, *orderbook = args.path
    return replay.main(args.format, message, orderbook=orderbook[0] if orderbook else None,
                       symbol=args.symbol, levels=args.levels, dump_l2=args.dump_l2,
                       tick_size=int(args.tick_size) if args.tick_size is not None else 100)


def _cmd_facts(args: argparse.Namespace) -> int:
    from rltrader.analysis import facts as analytics

    if args.out:
        os.makedirs(args.out, exist_ok=True)  # an unusable DIR fails now, not at the end
    market = analytics.lobster_market(args.path, interval_ms=args.interval_ms,
                                      levels=args.levels, tick_size=args.tick_size)
    facts = analytics.stylized_facts(market)
    print(facts.format_table())
    if args.out:
        from rltrader.analysis.report import write_report

        print(f"wrote {write_report(args.out, market, facts)}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from rltrader.tools import simulate

    return simulate.main(args.preset, config_path=args.config, seed=args.seed,
                         copies=args.copies, out=args.out, progress=not args.no_progress)


def _cmd_train(args: argparse.Namespace) -> int:
    if args.config is not None:                        # issue 15: the fast trainer
        from rltrader.training import experiment

        result = experiment.run(experiment.load(args.config), args.out,
                                progress=not args.no_progress)
        print(open(os.path.join(args.out, "report", "report.md")).read())
        return 0 if result else 1
    from rltrader.training import train

    overrides = {name: getattr(args, name) for name in (
        "n_envs", "n_agents", "eval_seed", "validation_seed", "eval_episodes",
        "checkpoint_every")}
    return train.main(args.out, timesteps=args.timesteps, seed=args.seed,
                      horizon=args.horizon, market=args.market,
                      imitate_steps=args.imitate_steps,
                      progress=not args.no_progress, **overrides)


#: commands with parsers of their own: name -> (module whose ``main(argv)`` runs it, help,
#: description); ``main`` hands them every argument after the name
DELEGATED = {
    "evaluate": ("rltrader.training.evaluate",
                 "checkpoints and baselines on held-out markets, paired, with CIs "
                 "(rltrader evaluate --help)",
                 "Evaluate trained checkpoints and baselines on the same held-out markets "
                 "(docs/training.md)."),
    "market-share": ("rltrader.training.market_share",
                     "train executors of size classes 1-100 together; measure impact, "
                     "behaviour, lead-lag, market quality (--help)",
                     "The market-share experiment (docs/market_share.md)."),
    "pbt": ("rltrader.training.pbt_compare",
            "population-based training against fixed hyperparameters and random search "
            "at equal compute, paired on held-out markets (--help)",
            "Population-based training, compared (docs/training.md)."),
    "portfolio": ("rltrader.training.portfolio.experiment",
                  "train per-stock traders and a portfolio manager over them, evaluate "
                  "against allocation baselines (--help)",
                  "The portfolio manager (docs/portfolio.md)."),
}


def _delegate(module: str) -> Callable[[argparse.Namespace], int]:
    """A command that runs ``module.main`` on the arguments after its name."""
    def run(args: argparse.Namespace) -> int:
        rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest   # main's "--"
        return importlib.import_module(module).main(rest)
    return run


def _cmd_serve(args: argparse.Namespace) -> int:
    from rltrader.exchange import server

    exchange = server.build(args.preset, config_path=args.config,
                            accounts_path=args.accounts, seed=args.seed, speed=args.speed,
                            quote=args.quote, lot_size=args.lot_size,
                            maker_fee_ppm=args.maker_fee_ppm, taker_fee_ppm=args.taker_fee_ppm,
                            journal=args.journal, replay=args.replay,
                            replay_symbol=args.replay_symbol,
                            replay_step_ns=args.replay_step_ms * 1_000_000,
                            venues=args.venues)
    if args.venues:                                    # issue 19: the SOR order type
        from rltrader.routing import exchange_sor

        exchange_sor.attach(exchange)
    names = ", ".join(exchange.symbols)
    if args.journal:                                   # journal (issue 17, item 5)
        print(f"journal {args.journal}: {exchange.journal.replayed} batches replayed",
              flush=True)
    hub = None
    if args.analytics:                                 # issue 18: the analytics server
        from rltrader.analytics import publish
        from rltrader.analytics import server as analytics_server

        hub = analytics_server.exchange_hub(exchange, intervals=args.intervals,
                                            sample=args.sample, zmq=args.zmq)
        hub.open_zmq()              # a bad --zmq fails here, before anything is served
    elif args.zmq or args.analytics_port:
        raise ValueError("--zmq and --analytics-port need --analytics")
    itch = server.itch_publisher(exchange, args.itch_file, args.itch_udp)
    print(f"serving {names} ({len(exchange.accounts)} accounts) on "
          f"http://{args.host}:{args.port}/api/v3", flush=True)
    analytics_port = args.analytics_port or args.port + 1
    if hub is not None:
        print(f"analytics and dashboard on http://{args.host}:{analytics_port}/", flush=True)
    closers = [c.close for c in (itch, exchange.journal if args.journal else None) if c]
    server.serve(exchange, args.host, args.port, weight_per_minute=args.weight_per_minute,
                 orders_per_10s=args.orders_per_10s,
                 binary_orders_per_10s=args.binary_orders_per_10s, on_shutdown=closers,
                 also=[] if hub is None else [(publish.app(hub), analytics_port)])
    return 0


def _cmd_analytics(args: argparse.Namespace) -> int:
    live = [m for m in ("connect", "simulate", "replay") if getattr(args, m)]
    if len(live) > 1:
        raise ValueError(f"give one of --connect, --simulate, --replay (got "
                         f"{', '.join('--' + m for m in live)})")
    if not live:
        if not args.path:
            raise ValueError("give PATH... --format F --out DIR (offline), or one of "
                             "--connect URL, --simulate PRESET, --replay FORMAT PATH... (live)")
        if args.format is None or args.out is None:
            raise ValueError("offline analytics needs --format and --out")
        from rltrader.analytics import offline

        options = {k: v for k, v in (("snapshot", args.snapshot), ("mapping", args.mapping))
                   if v is not None}
        if args.symbol is not None:
            options["book" if args.format == "itch" else "symbol"] = args.symbol
        summary = offline.run(args.path, format=args.format, out=args.out,
                              intervals=args.intervals, sample=args.sample, seed=args.seed,
                              progress=not args.no_progress, **options)
        print(f"{summary.get('events', 0):,} events, bars {summary.get('bars')}, "
              f"{summary.get('samples', 0):,} samples; wrote {args.out}")
        return 0
    if args.path or args.format or args.out or args.snapshot or args.mapping:
        raise ValueError("PATH..., --format, --out, --snapshot and --mapping are the offline "
                         "form; the live modes take none of them")
    from rltrader.analytics import server

    hub_args = {"intervals": args.intervals, "sample": args.sample, "zmq": args.zmq}
    if args.connect:
        hub, source = server.connect(args.connect, **hub_args)
        what = args.connect
    elif args.simulate:
        hub, source = server.simulate(args.simulate, speed=args.speed, seed=args.seed,
                                      **hub_args)
        what = f"simulated {args.simulate}"
    else:
        if len(args.replay) < 2:
            raise ValueError("--replay FORMAT PATH...")
        hub, source = server.replay(args.replay[0], args.replay[1:], speed=args.speed,
                                    symbol=args.symbol, **hub_args)
        what = f"replayed {args.replay[0]}"
    names = ", ".join(s.symbol for s in hub.specs)
    print(f"analytics of {names} ({what}) on http://{args.host}:{args.port}/ "
          f"(WebSocket /ws{', ZeroMQ ' + args.zmq if args.zmq else ''})", flush=True)
    server.serve(hub, source, args.host, args.port)
    return 0


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT, got {text!r}")
    return host, int(port)


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1000], got {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {text!r}")
    return int(text)


def _intervals(text: str) -> tuple[str, ...]:
    """``--intervals``: comma-separated bar intervals (``1s,1m``), at most 8."""
    from rltrader.analytics.engine import interval_name, parse_interval

    names = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = [parse_interval(t) for t in names]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < len(values) <= 8 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"1 to 8 distinct intervals, got {text!r}")
    if min(values) < 1_000_000:
        raise argparse.ArgumentTypeError(f"intervals of at least 1ms, got {text!r}")
    return tuple(interval_name(v) for v in values)


def _sample(text: str) -> str:
    """``--sample``: one interval."""
    if "," in text:
        raise argparse.ArgumentTypeError(f"one interval, got {text!r}")
    return _intervals(text)[0]


def _zmq(text: str) -> str:
    if re.fullmatch(r"(tcp://[^\s:/]+:\d{1,5}|ipc://\S+)", text) is None:
        raise argparse.ArgumentTypeError(f"must be tcp://HOST:PORT or ipc://PATH, got "
                                         f"{text!r}")
    return text


def _fee(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (ppm), got {text!r}") from None
    if abs(value) > 1_000_000:
        raise argparse.ArgumentTypeError(f"must be within +-1,000,000 ppm, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rltrader",
        description="A compiled limit-order-book market simulator for multi-agent RL.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="replay real order flow, trade against it, show the book",
                       description="The main job: rebuild a real NASDAQ book exactly from "
                       "the LOBSTER AAPL samples shipped in the package, replay an hour of it "
                       "with agents trading in the recorded queues, simulate a market day and "
                       "report its stylized facts, and time the core.")
    p.add_argument("--out", default="rltrader-demo", help="folder for the report (default: "
                   "%(default)s)")
    p.add_argument("--data", default=None, help="folder holding the market-data samples "
                   "(default: $RLTRADER_DATA, else the samples shipped in the package)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.set_defaults(func=Command("demo", _cmd_demo))

    p = sub.add_parser("bench", help="run the matching benchmark suite (medians)",
                       description="W1 limit+cancel (batched and one call per message), W2 "
                       "crossing inserts, W3 real LOBSTER AAPL flow on 1 and 512 books; "
                       "memory per order and per level; the batched env with random actions "
                       "(1,024 x 4 and 1 x 4,096 agents, agent-steps/s and the ratio to W1).")
    p.add_argument("--quick", action="store_true", help="smaller workloads, fewer repeats")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="machine-readable output (to stdout, or to PATH)")
    p.set_defaults(func=Command("bench", _cmd_bench))

    p = sub.add_parser("profile", help="where matching time goes, per operation type",
                       description="Time every message with the CPU cycle counter and report "
                       "ns/message and share of time per operation and outcome.")
    p.add_argument("--workload", choices=("W1", "W2", "W3", "all"), default="all")
    p.add_argument("--quick", action="store_true", help="smaller workloads")
    p.set_defaults(func=Command("profile", _cmd_profile))

    p = sub.add_parser("replay", help="rebuild books from recorded market data",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Rebuild the book from a recorded feed; report messages/s "
                       "and the final top of book.\n\n"
                       "  lobster   MESSAGE [ORDERBOOK]: a LOBSTER message file; with its\n"
                       "            orderbook file the book is rebuilt exactly (every level of\n"
                       "            every row, orders older than the file included) and checked\n"
                       "            against every row; --dump-l2 then writes the file again\n"
                       "  itch      PATH: one NASDAQ TotalView-ITCH 5.0 BinaryFILE (plain,\n"
                       "            .gz or a MoldUDP64 .pcap); --symbol selects a stock\n"
                       "  coinbase  PATH...: full-channel files, --snapshot SNAP required,\n"
                       "            --end-snapshot END checks the book order by order\n"
                       "  binance   PATH...: websocket captures (depth diffs, trades,\n"
                       "            bookTicker; the REST snapshot inside or --snapshot);\n"
                       "            checks the best bid/ask against bookTicker\n"
                       "  tardis    PATH...: tardis.dev incremental_book_L2, book_snapshot_N\n"
                       "            or quotes CSV\n"
                       "  generic   FILE --mapping MAPPING.toml: any venue's L3 order events\n"
                       "            or L2 level updates, CSV or Parquet (docs/generic.md)\n\n"
                       "Several PATHs (e.g. a shell glob) are read in the order given.\n\n"
                       "Exit status: 0 rebuilt (and checked); 1 a check failed (reported on "
                       "stdout);\n2 bad arguments or an input file that is missing or "
                       "malformed: one line\n'replay: FILE: PROBLEM' on stderr.")
    p.add_argument("format", choices=("lobster", "itch", "coinbase", "binance", "tardis",
                                      "generic"),
                   help="data format")
    p.add_argument("path", nargs="+", help="feed file(s), plain or gzip, in stream order")
    p.add_argument("--symbol", default=None, help="symbol to select (multi-symbol formats)")
    p.add_argument("--levels", type=_levels, default=None,
                   help=f"levels to show / dump, 1..{MAX_LEVELS} (default: a LOBSTER "
                   "orderbook file's, else 5)")
    p.add_argument("--dump-l2", default=None, metavar="OUT",
                   help="write the top-N book after every message (lobster: LOBSTER "
                   "orderbook CSV; crypto: tag,timestamp,ask_price_1,ask_size_1,... in ticks "
                   "and lots, one row per feed event)")
    p.add_argument("--tick-size", type=_decimal_step, default=None,
                   help="LOBSTER and ITCH: price units ($0.0001) per tick (default 100; ITCH files "
                   "with stocks under $1 need 1); crypto: the "
                   "tick as a decimal string, e.g. 0.01 (default: Coinbase BTC-USD's 0.01, "
                   "else the coarsest grid the file's prices lie on); generic: overrides "
                   "the mapping's")
    p.add_argument("--lot-size", type=_decimal_step, default=None,
                   help="crypto: the lot as a decimal string, e.g. 0.00000001 (default: "
                   "Coinbase BTC-USD's 1e-8, else inferred like --tick-size); generic: "
                   "overrides the mapping's")
    p.add_argument("--snapshot", default=None, metavar="FILE",
                   help="coinbase: REST level-3 snapshot; binance: REST depth snapshot when "
                   "not inside the capture")
    p.add_argument("--end-snapshot", default=None, metavar="FILE",
                   help="coinbase: a later level-3 snapshot to compare the rebuilt book with")
    p.add_argument("--mapping", default=None, metavar="TOML",
                   help="generic: the column mapping (names, units, side and event "
                   "encodings, tick and lot size; docs/generic.md)")
    p.add_argument("--window", type=_window, default=None,
                   help="crypto: the core's dense price window in ticks, a multiple of 64 "
                   "(default 262144)")
    # a Parquet file without pyarrow installed: the ImportError names the extra
    p.set_defaults(func=Command("replay", _replay, (*_READ_ERRORS, ImportError),
                                _replay_inputs))

    p = sub.add_parser("facts", help="stylized facts of a LOBSTER message file",
                       description="Rebuild the book from a LOBSTER message file, sample it "
                       "on a clock and print the stylized facts (returns, tails, memory, "
                       "spread, depth, order signs) against their typical ranges.")
    p.add_argument("path", help="LOBSTER message file (.csv or .csv.gz)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="also write the figures, report.md and facts.json to DIR")
    p.add_argument("--interval-ms", type=_positive, default=100,
                   help="sampling clock, ms (default %(default)s)")
    p.add_argument("--levels", type=_levels, default=10,
                   help=f"depth levels per side to record, 1..{MAX_LEVELS} (default "
                   "%(default)s)")
    p.add_argument("--tick-size", type=_positive, default=100,
                   help="price units per tick (LOBSTER: 1/10000 dollars; default 100)")
    p.set_defaults(func=Command("facts", _cmd_facts, _READ_ERRORS, lambda a: [a.path]))

    p = sub.add_parser("simulate", help="run a simulated market day with background traders",
                       description="Run a preset (rmsc04, small, wide) or a TOML market "
                       "configuration for a day and print messages/s, wake-ups/s and counts.")
    p.add_argument("preset", nargs="?", type=_preset, default="rmsc04",
                   help="preset (default: %(default)s)")
    p.add_argument("--config", default=None, metavar="TOML", help="a market config file "
                   "instead of a preset")
    p.add_argument("--seed", type=_non_negative, default=0,
                   help="the day's seed: the same seed, the same day (default 0)")
    p.add_argument("--copies", type=_positive, default=None,
                   help="independent copies per symbol")
    p.add_argument("--out", default=None, help="record the day to OUT.npz and book 0 to "
                   "OUT_book0_message.csv + OUT_book0_orderbook_10.csv (LOBSTER)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=Command("simulate", _cmd_simulate, _READ_ERRORS,
                                lambda a: [a.config] if a.config else []))

    p = sub.add_parser("train", help="train one shared PPO policy for many agents (needs "
                       "the rl extra)",
                       description="Train Stable-Baselines3 PPO with one policy shared by "
                       "N_ENVS x N_AGENTS market-making agents, checkpoint it, and evaluate "
                       "it against a random policy and a fixed-spread market maker on the "
                       "same seeded markets (docs/training.md).")
    p.add_argument("config", nargs="?", default=None, metavar="CONFIG.toml",
                   help="an experiment file for the fast PyTorch trainer: task, env, "
                   "trainer, training seeds, then the evaluation against the baselines "
                   "(examples/train/*.toml; docs/training.md); without it, the "
                   "Stable-Baselines3 market-making run below")
    p.add_argument("--timesteps", type=_positive, default=None, metavar="N",
                   help="agent-steps to train for (default: TrainConfig's)")
    p.add_argument("--n-envs", type=_positive, default=None, help="markets (default 256)")
    p.add_argument("--n-agents", type=_positive, default=None, help="learners per market "
                   "(default 4)")
    p.add_argument("--horizon", type=_positive, default=None, help="steps per episode "
                   "(default 1000)")
    p.add_argument("--market", type=_preset, default=None, metavar="PRESET",
                   help="background market preset (default: resilient; thin: cheaper, for "
                   "makers only; informed: thin with informed flow)")
    p.add_argument("--seed", type=_non_negative, default=0, help="training seed (default 0)")
    p.add_argument("--eval-seed", type=_non_negative, default=None, help="evaluation markets' seed")
    p.add_argument("--validation-seed", type=_non_negative, default=None,
                   help="markets on which every checkpoint is scored to select the policy "
                   "evaluated (default 2000)")
    p.add_argument("--imitate-steps", type=_non_negative, default=None, metavar="N",
                   help="batched steps of the market maker cloned before PPO; 0: start "
                   "from random weights (default 500)")
    p.add_argument("--eval-episodes", type=_positive, default=None,
                   help="whole episodes per policy in the final evaluation")
    p.add_argument("--checkpoint-every", type=_positive, default=None, metavar="N",
                   help="agent-steps between checkpoints")
    p.add_argument("--out", default="rltrader-train", help="output folder (default: "
                   "%(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=Command("train", _cmd_train, (OSError, ValueError),
                                lambda args: [args.config] if args.config else []))

    for name, (module, help_, description) in DELEGATED.items():
        p = sub.add_parser(name, add_help=False, help=help_, description=description)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=Command(name, _delegate(module), (OSError, ValueError)))

    p = sub.add_parser("serve", help="serve a market to real clients (Binance-compatible "
                       "REST; needs the exchange extra)",
                       description="Run a market continuously on a clock with its background "
                       "traders and serve it over a Binance-spot-compatible API, so that "
                       "ccxt and other clients trade on it (docs/exchange.md). Symbols are "
                       "the config's names + --quote; prices in ticks of its tick_size, "
                       "sizes in lots of --lot-size.")
    p.add_argument("preset", nargs="?", type=_preset, default="resilient",
                   help="market preset (default: %(default)s)")
    p.add_argument("--config", default=None, metavar="TOML", help="a market config file "
                   "instead of a preset")
    p.add_argument("--accounts", default=None, metavar="FILE", help="TOML accounts: name, "
                   "api_key, secret, balances (without it: market data only)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: "
                   "loopback)")
    p.add_argument("--port", type=_port, default=8080)
    p.add_argument("--speed", type=_speed, default=1.0, help="background steps per step "
                   "of wall time (default 1: real time)")
    p.add_argument("--seed", type=_non_negative, default=0,
                   help="the simulated market's seed (default 0)")
    p.add_argument("--quote", default="USDT", help="quote asset (default: %(default)s)")
    p.add_argument("--lot-size", default="1", help="base units per lot (default 1)")
    p.add_argument("--maker-fee-ppm", type=_fee, default=0,
                   help="maker fee in parts per million of the notional; negative: a "
                        "rebate (default 0)")
    p.add_argument("--taker-fee-ppm", type=_fee, default=0,
                   help="taker fee in parts per million of the notional (default 0)")
    p.add_argument("--weight-per-minute", type=_positive, default=6000,
                   help="request weight per API key and minute (HTTP 429 beyond)")
    p.add_argument("--binary-orders-per-10s", type=_positive, default=5_000_000,
                   help="records of binary order entry (/orders) per API key and 10 "
                   "seconds (a text error beyond)")
    p.add_argument("--orders-per-10s", type=_positive, default=100,
                   help="new orders per API key and 10 seconds (HTTP 429 beyond)")
    p.add_argument("--journal", default=None, metavar="DIR", help="journal every batch "
                   "in DIR before answering it, and resume the journal DIR holds (replayed "
                   "after a crash; it must be of the same market, seed and accounts)")
    p.add_argument("--replay", nargs="+", default=None, metavar="ARG",
                   help="serve recorded flow instead of a simulated market: FORMAT PATH... "
                   "(lobster MESSAGE [ORDERBOOK], itch PATH, binance PATH..., tardis "
                   "PATH...); the accounts trade in its queues (docs/hybrid.md)")
    p.add_argument("--replay-symbol", default=None, metavar="NAME", help="the stock of an "
                   "ITCH file that holds several, and the served symbol's base name")
    p.add_argument("--replay-step-ms", type=_positive, default=100, metavar="MS",
                   help="record time per background step (default 100)")
    p.add_argument("--venues", type=_venues, default=(), metavar="NAME:MAKER:TAKER,...",
                   help="serve the market's one symbol on several venues (fees in ppm, "
                   "negative maker fee: a rebate), each its own book and background, with "
                   "Binance's smart-order-routing endpoint POST /api/v3/sor/order across "
                   "them (docs/routing.md)")
    p.add_argument("--itch-file", default=None, metavar="PATH", help="publish the books "
                   "in ITCH 5.0 to this BinaryFILE (rltrader replay itch rebuilds them)")
    p.add_argument("--itch-udp", type=_host_port, default=None, metavar="HOST:PORT",
                   help="publish the books in ITCH 5.0 as MoldUDP64 datagrams")
    _publish_options(p, serve=True)
    p.set_defaults(func=Command("serve", _cmd_serve, _READ_ERRORS,
                                lambda a: [x for x in (a.config, a.accounts, a.journal,
                                                       *(a.replay or [])[1:]) if x]))

    p = sub.add_parser("analytics", help="bars, indicators and microstructure features: "
                       "live (served over WebSocket, ZeroMQ and a dashboard) or offline "
                       "(Parquet and CSV)",
                       description="Live: follow a served exchange (--connect), a simulated "
                       "market (--simulate) or a recorded day (--replay) and publish its "
                       "features: Binance-style WebSocket streams on /ws (klines for "
                       "ccxt.pro, analytics, indicators, depth, trades, agents), ZeroMQ PUB "
                       "(--zmq), REST history and the dashboard on / (docs/analytics.md). "
                       "Offline: PATH... --format F --out DIR writes the same features.")
    p.add_argument("path", nargs="*", help="offline: the recording's files")
    p.add_argument("--format", default=None, choices=("lobster", "itch", "binance", "tardis",
                                                      "coinbase", "generic", "simulate"),
                   help="offline: the files' format (simulate: PATH is a preset)")
    p.add_argument("--out", default=None, metavar="DIR", help="offline: output folder "
                   "(bars_<interval> and samples, Parquet and CSV, and summary.json)")
    p.add_argument("--snapshot", default=None, metavar="PATH", help="offline: the depth "
                   "(binance) or level-3 (coinbase) snapshot the feed starts from")
    p.add_argument("--mapping", default=None, metavar="TOML", help="offline: a generic "
                   "file's column mapping")
    p.add_argument("--no-progress", action="store_true", help="offline: no progress bar")
    p.add_argument("--connect", default=None, metavar="URL", help="follow the exchange "
                   "served at URL (http://HOST:PORT: rltrader serve, or a Binance-spot-like "
                   "API)")
    p.add_argument("--simulate", default=None, type=_preset, metavar="PRESET",
                   help="run a simulated market (a preset) in this process")
    p.add_argument("--replay", nargs="+", default=None, metavar="ARG",
                   help="replay a recording: FORMAT PATH... (lobster MESSAGE [ORDERBOOK], "
                   "itch PATH, binance PATH..., tardis PATH..., coinbase SNAPSHOT FEED...)")
    p.add_argument("--symbol", default=None, metavar="NAME", help="the stock of an ITCH "
                   "file that holds several; a crypto file's symbol")
    p.add_argument("--speed", type=_speed, default=1.0, help="--simulate, --replay: market "
                   "time per wall time (default 1)")
    p.add_argument("--seed", type=_non_negative, default=0, help="--simulate's seed")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: "
                   "loopback)")
    p.add_argument("--port", type=_port, default=8090, help="HTTP and WebSocket port "
                   "(default %(default)s)")
    _publish_options(p, serve=False)
    p.set_defaults(func=Command("analytics", _cmd_analytics, _READ_ERRORS,
                                lambda a: [*a.path, *(a.replay or [])[1:],
                                           *(f for f in (a.snapshot, a.mapping) if f)]))
    return parser


def _publish_options(p: argparse.ArgumentParser, serve: bool) -> None:
    """The analytics server's options (``serve``: they apply with ``--analytics``)."""
    if serve:
        p.add_argument("--analytics", action="store_true", help="also serve live analytics "
                       "and the dashboard (rltrader analytics), in this process, on "
                       "--analytics-port")
        p.add_argument("--analytics-port", type=_port, default=None, metavar="PORT",
                       help="the analytics "
                       "server's port (default: --port + 1)")
    with_ = " (with --analytics)" if serve else ""
    p.add_argument("--zmq", type=_zmq, default=None, metavar="ENDPOINT", help="also publish "
                   f"every stream on a ZeroMQ PUB socket bound here{with_}: "
                   "tcp://127.0.0.1:PORT")
    p.add_argument("--intervals", type=_intervals, default=("1s", "1m"), metavar="LIST",
                   help=f"bar intervals, comma-separated{with_} (default 1s,1m)")
    p.add_argument("--sample", type=_sample, default="1s", metavar="INTERVAL",
                   help=f"the features' sample clock{with_} (default 1s)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in DELEGATED:        # their own parsers take the rest
        argv = [argv[0], "--", *argv[1:]]
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of what is still
    buffered does not fail again (Python's docs, "Note on SIGPIPE")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
