#!/usr/bin/env python3
"""Benchmark of the HTTP host: requests/s and latency of a trivial route.

The host runs in a child process (one core for it), the load generator here: ``--concurrency``
clients, each sending its requests one after another, on one kept-alive connection
(``keepalive``) or a new connection per request (``close``), in plain text and over TLS, and
with an API key checked on each request. The same run measures the host as it was before h11
(``gateway/http.py`` at ``--baseline-rev``, loaded from git) for the plain variants, so the
output carries ``speedup_vs_old_host``.

Prints one JSON object on its last line (STYLE.md rule 16). ``--quick`` shrinks the counts.

    .venv/bin/python scripts/bench_http.py [--quick] [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

API_KEY = "bench-key-0123456789abcdef"
BASELINE_REV = "6f05027"  # main before the h11 host


# -- the server (child process) ---------------------------------------------------------------


def old_host(ping: Any) -> Any:
    """The host as it was before h11 (``gateway/http.py`` at BASELINE_REV), serving /ping."""
    from gateway.contracts import HttpRoute

    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BASELINE_REV}:gateway/http.py"],
        capture_output=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_http.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("old_http", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class OldConfig:
        listen = "127.0.0.1:0"
        max_body_bytes = 1 << 20
        idle_timeout = 30.0

    routes = [("bench", HttpRoute(method="GET", path="/ping", handler=ping, auth="none"))]
    return module.HttpHost(OldConfig(), routes)


def server_cpu(impl: str, requests: int) -> dict[str, float]:
    """Requests/s of one connection's server side alone: pipelined requests over an in-memory
    stream, no sockets and no load generator competing for the CPU (the steadiest figure on a
    shared machine)."""
    import trio.testing

    from gateway.contracts import HttpResponse, HttpRoute
    from gateway.http import HttpConfig, HttpHost
    from gateway.logging import configure_logging

    configure_logging("warning", fmt="json", stream=sys.stderr)

    async def ping(request: Any) -> Any:
        return HttpResponse(body=b"pong")

    request = b"GET /ping HTTP/1.1\r\nHost: bench\r\n\r\n"

    async def run() -> float:
        client, server = trio.testing.memory_stream_pair()
        if impl == "old":
            serve = old_host(ping)._serve_connection
        else:
            new = HttpHost(
                HttpConfig(listen="127.0.0.1:0"),
                [("bench", HttpRoute(method="GET", path="/ping", handler=ping, auth="none"))],
            )

            async def serve(stream: Any) -> None:
                async with stream:
                    await new._serve_http(stream, "127.0.0.1")

        began = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, server)

            async def send() -> None:
                for _ in range(requests):
                    await client.send_all(request)
                await client.send_eof()

            nursery.start_soon(send)
            answered = 0
            while chunk := await client.receive_some(1 << 20):
                answered += chunk.count(b"HTTP/1.1 200")
        assert answered == requests, answered
        return time.perf_counter() - began

    return {"requests": requests, "requests_per_s": round(requests / trio.run(run), 1)}


def serve(impl: str, cert: str, key: str) -> None:
    from gateway.contracts import HttpResponse, HttpRoute
    from gateway.logging import configure_logging

    configure_logging("warning", fmt="json", stream=sys.stderr)  # stdout carries the port

    async def ping(request: Any) -> Any:
        return HttpResponse(body=b"pong")

    if impl == "old":
        host = old_host(ping)
    else:
        from gateway.http import HttpClient, HttpConfig, HttpHost

        config = HttpConfig(
            listen="127.0.0.1:0",
            max_connections=4096,
            max_connections_per_client=4096,
            tls_cert=Path(cert) if cert else None,
            tls_key=Path(key) if key else None,
            clients={"bench": HttpClient(name="bench", api_key=API_KEY)},
        )
        routes = [
            ("bench", HttpRoute(method="GET", path="/ping", handler=ping, auth="none")),
            ("bench", HttpRoute(method="GET", path="/keyed", handler=ping, auth="key")),
        ]
        host = HttpHost(config, routes)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            print(host.port, flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes stdin
            nursery.cancel_scope.cancel()

    trio.run(main)


# -- the load (this process) ------------------------------------------------------------------


async def read_response(stream: trio.abc.Stream, buffer: bytearray) -> None:
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise RuntimeError("connection closed before the response")
        buffer += chunk
    head = bytes(buffer[:end]).lower()
    if not head.startswith(b"http/1.1 200"):
        raise RuntimeError(f"unexpected answer: {head[:60]!r}")
    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
    while len(buffer) < end + 4 + length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise RuntimeError("connection closed in the body")
        buffer += chunk
    del buffer[: end + 4 + length]


async def load(
    port: int,
    *,
    requests: int,
    concurrency: int,
    keepalive: bool,
    context: ssl.SSLContext | None,
    path: str = "/ping",
) -> dict[str, float]:
    headers = f"GET {path} HTTP/1.1\r\nHost: bench\r\n"
    if path == "/keyed":
        headers += f"X-Api-Key: {API_KEY}\r\n"
    raw = (headers + ("" if keepalive else "Connection: close\r\n") + "\r\n").encode()
    latencies: list[float] = []
    per_worker = max(1, requests // concurrency)

    async def connect() -> trio.abc.Stream:
        if context is None:
            return await trio.open_tcp_stream("127.0.0.1", port)
        return await trio.open_ssl_over_tcp_stream(
            "127.0.0.1", port, ssl_context=context, https_compatible=True
        )

    async def worker() -> None:
        stream = await connect() if keepalive else None
        buffer = bytearray()
        for _ in range(per_worker):
            start = time.perf_counter()
            if stream is None or not keepalive:
                stream = await connect()
                buffer.clear()
            await stream.send_all(raw)
            await read_response(stream, buffer)
            if not keepalive:
                await stream.aclose()
            latencies.append(time.perf_counter() - start)
        if keepalive and stream is not None:
            await stream.aclose()

    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


def start_server(impl: str, cert: str = "", key: str = "") -> tuple[subprocess.Popen[bytes], int]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", impl, "--cert", cert, "--key", key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdout is not None
    port = int(child.stdout.readline())
    return child, port


def stop_server(child: subprocess.Popen[bytes]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--requests", type=int, default=0, help="requests per variant")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="median of this many runs")
    parser.add_argument("--serve", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cert", default="", help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.cert, args.key)
        return
    requests = args.requests or (1000 if args.quick else 5000)
    # A TLS handshake per request costs far more: fewer of them.
    close_tls_requests = max(args.concurrency, requests // 5)

    import trustme

    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    results: dict[str, Any] = {
        "requests_per_variant": requests,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        server_cert.cert_chain_pems[0].write_to_path(cert)
        server_cert.private_key_pem.write_to_path(key)
        plans: list[tuple[str, str, bool, bool, str, int]] = [
            # (name, impl, tls, keepalive, path, requests)
            ("plain_keepalive", "new", False, True, "/ping", requests),
            ("plain_close", "new", False, False, "/ping", requests),
            ("plain_keepalive_api_key", "new", False, True, "/keyed", requests),
            ("tls_keepalive", "new", True, True, "/ping", requests),
            ("tls_close", "new", True, False, "/ping", close_tls_requests),
            ("old_host_plain_keepalive", "old", False, True, "/ping", requests),
            ("old_host_plain_close", "old", False, False, "/ping", requests),
        ]
        # Rounds interleave the variants, and each figure is the median round: the machine is
        # shared, and a burst of other work should not land on one variant only.
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in plans}
        for round_number in range(args.rounds):
            for name, impl, tls, keepalive, path, count in plans:
                child, port = start_server(impl, str(cert) if tls else "", str(key) if tls else "")
                try:
                    figures = trio.run(
                        lambda port=port, count=count, keepalive=keepalive, tls=tls, path=path: (
                            load(
                                port,
                                requests=count,
                                concurrency=args.concurrency,
                                keepalive=keepalive,
                                context=client_context if tls else None,
                                path=path,
                            )
                        )
                    )
                finally:
                    stop_server(child)
                rounds[name].append(figures)
                print(round_number, name, figures, file=sys.stderr)
        for name, figures in rounds.items():
            figures.sort(key=lambda f: f["requests_per_s"])
            results[name] = figures[len(figures) // 2]
    for impl in ("new", "old"):
        figures = sorted(
            (server_cpu(impl, requests * 2) for _ in range(args.rounds)),
            key=lambda f: f["requests_per_s"],
        )
        results["server_cpu_pipelined" if impl == "new" else "old_host_server_cpu_pipelined"] = (
            figures[len(figures) // 2]
        )
    results["speedup_vs_old_host"] = {
        variant: round(
            results[f"plain_{variant}"]["requests_per_s"]
            / results[f"old_host_plain_{variant}"]["requests_per_s"],
            2,
        )
        for variant in ("keepalive", "close")
    }
    results["speedup_vs_old_host"]["server_cpu_pipelined"] = round(
        results["server_cpu_pipelined"]["requests_per_s"]
        / results["old_host_server_cpu_pipelined"]["requests_per_s"],
        2,
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
