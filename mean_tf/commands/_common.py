"""Options shared by subcommands: the model config (`--config FILE`, `--set key=value`)."""
from __future__ import annotations

import dataclasses
import json

from mean_tf.config import MEANConfig
from mean_tf.errors import MeanTFError


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
