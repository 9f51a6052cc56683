"""Options shared by subcommands: the model config (`--config FILE`, `--set key=value`), list flags
(comma-separated and repeatable) and renamed flags (the old spelling still works, with a note on stderr).

Flag names, the same in every subcommand: `--data` is the dataset a command reads (a folder with
manifest.json), `--input` a raw file it reads, `--out` what it writes (a file or a folder), `--work` a scratch
or cache folder, `--results` the measurements `benchmark` and `perf` add to, `--report`/`--report-dir` where
they render their report, and `--write-docs` points results and report at the tracked docs/ instead of out/.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError

# Generated outputs (datasets, pipeline runs, compiled specs, benchmark and perf results) go here by default.
OUT = "out"


def names(text: str) -> tuple:
    """`a, b,c` -> ('a', 'b', 'c'): the items of a comma-separated list, blanks dropped."""
    return tuple(x.strip() for x in text.split(",") if x.strip())


def integers(text: str) -> tuple:
    """`1,64` -> (1, 64); a non-integer item is an argparse error naming it."""
    items = names(text)
    try:
        return tuple(int(x) for x in items)
    except ValueError:
        bad = next(x for x in items if not x.lstrip("+-").isdigit())
        raise argparse.ArgumentTypeError(f"{bad!r} is not an integer") from None


class ListOption(argparse.Action):
    """A list flag that takes comma-separated values and may be repeated: `--x a,b --x c` gives a, b, c.

    The first use replaces the default; a value given twice is kept once, in first-seen order. The parsed
    value is a tuple (a list when the default is one).
    """

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        items = [] if current is None or current is self.default else list(current)
        items += [v for v in values if v not in items]
        setattr(namespace, self.dest, list(items) if isinstance(self.default, list) else tuple(items))


def add_list_option(parser, *flags, of=names, help: str = "", **kwargs) -> None:
    """A ListOption flag whose items are parsed by `of` (`names`, `integers` or another text -> tuple)."""
    parser.add_argument(*flags, type=of, action=ListOption,
                        help=f"{help} (comma-separated or repeated)" if help else "comma-separated or repeated",
                        **kwargs)


class RenamedOption(argparse._StoreAction):
    """A flag stored under its first (current) name; the `old` spellings still work for one release and print
    a one-line note on stderr when used."""

    def __init__(self, option_strings, dest, old=(), **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.old = tuple(old)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.old:
            print(f"note: {option_string} is deprecated and goes in the next release: use {self.option_strings[0]}",
                  file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed_option(parser, flag: str, *old: str, **kwargs) -> None:
    """`flag`, with `old` as deprecated aliases (shown in --help as such)."""
    if old:
        kwargs["help"] = f"{kwargs.get('help', '')} ({', '.join(old)}: deprecated alias)".lstrip()
    parser.add_argument(flag, *old, action=RenamedOption, old=old, **kwargs)


def add_config_options(parser) -> None:
    parser.add_argument("--config", help="MEANConfig as a JSON or YAML file (defaults: the paper's settings)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change one config value, e.g. --set num_distributions=4 (repeatable; JSON values)")


def config_from_args(args, **changes) -> MEANConfig:
    """The config file (or defaults), then each --set, then `changes` (which win over --set); validated."""
    config = MEANConfig.from_file(args.config) if args.config else MEANConfig()
    values = {}
    fields = {f.name for f in dataclasses.fields(MEANConfig)}
    for item in args.overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise MeanTFError(f"--set {item!r}: expected KEY=VALUE")
        if key not in fields:
            raise MeanTFError(f"config: unknown key {key!r}")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return config.replace(**{**values, **changes})
