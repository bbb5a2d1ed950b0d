"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.receiver import OtlpReceiver


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """A real OTLP/HTTP receiver; its base URL is `receiver.endpoint`."""
    r = OtlpReceiver()
    r.endpoint = r.start()
    yield r
    r.stop()
