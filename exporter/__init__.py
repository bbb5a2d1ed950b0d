"""agent-activity-exporter: agent platform activity -> OpenTelemetry traces and Prometheus metrics."""

__version__ = "0.1.0"
