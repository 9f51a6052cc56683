"""`mean-tf` console entry point. Each subcommand lives in `mean_tf/commands/<name>.py` and exposes
`register(subparsers)`, which adds its parser and sets `func(args) -> int`.

Bad input raises MeanTFError: the CLI prints one line, `error: ...`, and exits with code 2
(the traceback only with --debug); so does an OSError on a user's path (missing, unreadable, disk full).
A MeanTFWarning (e.g. an unexpected extra column) prints one line, `warning: ...`, and the run goes on.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import importlib  # noqa: E402
import pkgutil  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

from mean_tf import __version__, commands  # noqa: E402
from mean_tf.errors import MeanTFError, MeanTFWarning  # noqa: E402


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """MeanTFWarning as one `warning: ...` line on stderr; other warnings as Python prints them."""
    if issubclass(category, MeanTFWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mean-tf", description="MEAN customer-lifetime-value models and pipeline.")
    parser.add_argument("--version", action="version", version=f"mean-tf {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--verbose", action="store_true",
                        help="show every log line and warning of TensorFlow, Beam and TFX (default: errors and "
                             "one line per pipeline component)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"mean_tf.commands.{info.name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.verbose:
        os.environ["MEAN_TF_VERBOSE"] = "1"  # mean_tf.trainer.VERBOSE_ENV (without importing TensorFlow here)
    else:
        from mean_tf import logs

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
