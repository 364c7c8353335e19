"""What the observability tests use: an OTLP/HTTP receiver, a Prometheus scrape, a browser.

The receiver is a real HTTP server decoding the protobuf the real OTLP exporter sends; the
scrape parses the text format with prometheus_client's own parser; the browser is Debian's
headless Chromium driven by Selenium through Debian's chromedriver.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1400,1000")  # fmt: skip


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str


@dataclass
class OtlpReceiver:
    """Collects the spans POSTed to /v1/traces (OTLP/HTTP, protobuf)."""

    spans: list[Span] = field(default_factory=list)
    url: str = ""

    def take(self, body: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    ids = (s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex())
                    self.spans.append(Span(s.name, *ids, attrs.get("service.name", "")))


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP trace receiver on a free loopback port, for the duration."""
    receiver = OtlpReceiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path.endswith("/v1/traces"):
                receiver.take(body)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """One scrape, parsed: sample name -> {sorted labels: value}."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(samples: dict[str, dict[Any, float]], name: str, **labels: str) -> float:
    """The sum of a sample's values over the label sets that match ``labels``."""
    return sum(
        v for k, v in samples.get(name, {}).items() if all((n, x) in k for n, x in labels.items())
    )


def chromium() -> Any:
    """A headless Chromium (fresh profile) driven by Debian's chromedriver."""
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def wait_for(driver: Any, script: str, timeout_s: float = 60.0) -> Any:
    """Wait until the page's ``script`` (a JS expression) returns something truthy; return it."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(
        lambda d: d.execute_script(f"return ({script});")
    )


def screenshot(driver: Any, name: str) -> Path:
    """Save what the browser shows as build/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
