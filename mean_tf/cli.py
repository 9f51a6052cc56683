"""`mean-tf` console entry point. Each subcommand lives in `mean_tf/commands/<name>.py` and exposes
`register(subparsers)`, which adds its parser and sets `func(args) -> int`; packages above mean_tf (the
pipeline's `pipeline`, `demo`) add theirs through the `mean_tf.commands` entry points of setup.py.

Bad input raises MeanTFError: the CLI prints one line, `error: ...`, and exits with code 2
(the traceback only with --debug); so does an OSError on a user's path (missing, unreadable, disk full).
A MeanTFWarning (e.g. an unexpected extra column) prints one line, `warning: ...`, and the run goes on.

May import: errors, contract, runtime, commands.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import importlib  # noqa: E402
from importlib import metadata  # noqa: E402
import pkgutil  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from typing import Optional  # noqa: E402

from mean_tf import __version__, commands  # noqa: E402
from mean_tf.contract import VERBOSE_ENV  # noqa: E402
from mean_tf.errors import MeanTFError, MeanTFWarning  # noqa: E402

COMMANDS_ENTRY_POINTS = "mean_tf.commands"


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """MeanTFWarning as one `warning: ...` line on stderr; other warnings as Python prints them."""
    if issubclass(category, MeanTFWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def registered_commands() -> dict:
    """Subcommand name -> its `register(subparsers)`: mean_tf's own and the entry points'."""
    registrars = {info.name: importlib.import_module(f"mean_tf.commands.{info.name}").register
                  for info in pkgutil.iter_modules(commands.__path__) if not info.name.startswith("_")}
    registrars.update({entry.name: entry.load() for entry in metadata.entry_points(group=COMMANDS_ENTRY_POINTS)})
    return registrars


def build_parser(registrars: Optional[dict] = None, prog: str = "mean-tf") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="MEAN customer-lifetime-value models and pipeline.")
    parser.add_argument("--version", action="version", version=f"mean-tf {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--verbose", action="store_true",
                        help="show every log line and warning of TensorFlow, Beam and TFX (default: errors and "
                             "one line per pipeline component)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    registrars = registered_commands() if registrars is None else registrars
    for name in sorted(registrars):
        registrars[name](subparsers)
    return parser


def main(argv=None, registrars: Optional[dict] = None, prog: str = "mean-tf") -> int:
    """Run one subcommand (of `registrars`, default every registered one); the exit code."""
    parser = build_parser(registrars, prog)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    else:
        from mean_tf.runtime import logs

        logs.quiet()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", MeanTFWarning)
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except (MeanTFError, OSError) as e:
        if args.debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(error: Exception) -> str:
    """The error's message; an OSError as `<path>: <reason>`."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
