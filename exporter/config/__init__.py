"""YAML -> typed, validated configuration.

`load_config()` reads the file with a safe YAML loader, substitutes
`${VAR}` / `${VAR:-default}` in every string value, checks every key and
value, resolves the OTEL_EXPORTER_OTLP_* variables with the OpenTelemetry
spec's semantics, and returns frozen dataclasses. Nothing else in the
exporter sees YAML.

- `model`: the typed configuration; `load`: loading and the top-level keys;
  `sources`: the `sources` list; `otel`: the `traces` and `logs` sections
  and the OTEL_* variables; `env`: `${VAR}` substitution; `checker` and
  `validators`: problem collection and the leaf validators; `options`: how
  a platform declares its own keys (each platform's options.py).
"""

from exporter.config.durations import format_duration, parse_duration
from exporter.config.load import load_config
from exporter.config.model import (
    Config,
    ConfigError,
    LogsConfig,
    MetricsConfig,
    RunsConfig,
    SourceConfig,
    StateConfig,
    TracesConfig,
)
from exporter.config.options import Options, OptionSpec, PlatformSpec

__all__ = [
    "Config",
    "ConfigError",
    "LogsConfig",
    "MetricsConfig",
    "OptionSpec",
    "Options",
    "PlatformSpec",
    "RunsConfig",
    "SourceConfig",
    "StateConfig",
    "TracesConfig",
    "format_duration",
    "load_config",
    "parse_duration",
]
