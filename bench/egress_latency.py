"""Added latency and throughput of the egress proxy next to the gateway's, in one run.

One lictor process serves both data planes (`lictor serve --egress regular`), the mock
upstream runs in its own process, and this process rotates four targets at concurrency 1:
direct to the upstream; the gateway (base_url mode); the egress proxy carrying the same
chat completion to a declared model host (it re-enters the gateway's adapters); and the
egress proxy carrying it as a plain `http_request` (Cedar, body scans both ways, audit).
Then each target's throughput at concurrency 10. Same payload as bench/gateway_latency.py,
default packs, audit on. Plain HTTP on every leg by default; `--tls` serves the upstream
over HTTPS (a throwaway CA that lictor and the client trust), so the egress targets pay
TLS interception as they would in a pod (connections are kept alive, as clients do).

    python bench/egress_latency.py [--requests 1000] [--tls] [--json bench/results/egress.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from gateway_latency import KEY, payload
from measure import free_port, percentile, run_header, wait_ready, write_config, write_json

HERE = Path(__file__).resolve().parent
NAMES = ["direct", "gateway", "egress_model", "egress_http"]
POLICY = """@id("bench-tool-host")
permit (principal, action == Action::"http_request", resource == Host::"localhost:{port}");
"""


class Target:
    """One way to send the same request: a URL, maybe through the egress proxy."""

    def __init__(self, url: str, proxy: str | None, headers: dict[str, str]) -> None:
        self.url, self.proxy, self.headers = url, proxy, headers
        self.tls: ssl.SSLContext | bool = True

    async def send(self, session: aiohttp.ClientSession, body: bytes) -> None:
        async with session.post(self.url, data=body, headers=self.headers,
                                proxy=self.proxy, ssl=self.tls) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{self.url}: HTTP {resp.status}: {await resp.text()}")


async def latency(targets: list[Target], n: int, warmup: int) -> list[list[float]]:
    """Milliseconds per request for each target; the order rotates every round."""
    out: list[list[float]] = [[] for _ in targets]
    async with aiohttp.ClientSession() as session:
        for i in range(warmup + n):
            body = payload(i)
            for k in range(len(targets)):
                j = (i + k) % len(targets)
                t0 = time.perf_counter()
                await targets[j].send(session, body)
                if i >= warmup:
                    out[j].append((time.perf_counter() - t0) * 1000)
    return out


async def throughput(target: Target, n: int, concurrency: int) -> float:
    """Requests per second with `concurrency` clients sending `n` requests in all."""
    counter = iter(range(n))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in counter:
            await target.send(session, payload(i))

    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return n / (time.perf_counter() - t0)


def make_certs(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA (mitmproxy's own CA code) and a certificate for 127.0.0.1 and
    localhost from it:
    the CA file, the server certificate and its key (PEM)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from mitmproxy.certs import CertStore

    store = CertStore.from_store(folder, "bench", 2048)
    entry = store.get_cert("127.0.0.1", [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")])
    cert, key = folder / "upstream.pem", folder / "upstream-key.pem"
    cert.write_bytes(entry.cert.to_pem())
    key.write_bytes(entry.privatekey.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder / "bench-ca-cert.pem", cert, key


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--tls", action="store_true", help="HTTPS upstream (see above)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    scheme = "https" if args.tls else "http"

    up_port, lictor_port, egress_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules"
        rules.mkdir()
        (rules / "bench.cedar").write_text(POLICY.format(port=up_port))
        upstream_cmd = [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(up_port)]
        env = dict(os.environ)
        egress: dict[str, Any] = {"port": egress_port, "agent": "bench-agent",
                                  "model_hosts": [{"host": f"127.0.0.1:{up_port}"}]}
        if args.tls:
            ca, cert, key = make_certs(Path(tmp) / "ca")
            upstream_cmd += ["--cert", str(cert), "--key", str(key)]
            env["SSL_CERT_FILE"] = str(ca)  # the gateway's passthrough trusts it
            egress["upstream_ca"] = str(ca)
        config = Path(tmp) / "lictor.yaml"
        write_config(config, {
            "data_dir": str(Path(tmp) / "var"),
            "agents": [{"id": "bench-agent", "team": "bench", "key": KEY}],
            "models": [{"name": "bench-gpt", "backend": "passthrough",
                        "base_url": f"{scheme}://127.0.0.1:{up_port}/v1"}],
            "rules": {"paths": [str(rules)], "watch": False},
            "egress": egress,
        })
        proxy = f"http://127.0.0.1:{egress_port}"
        json_type = {"Content-Type": "application/json"}
        upstream = f"{scheme}://127.0.0.1:{up_port}/v1/chat/completions"
        targets = [
            Target(upstream, None, json_type),
            Target(f"http://127.0.0.1:{lictor_port}/v1/chat/completions", None,
                   {**json_type, "Authorization": f"Bearer {KEY}"}),
            Target(upstream, proxy, json_type),
            Target(upstream.replace("127.0.0.1", "localhost"), proxy, json_type),
        ]
        try:
            procs.append(subprocess.Popen(upstream_cmd))
            log = Path(tmp) / "lictor.err"
            with log.open("wb") as err:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "lictor.proxy.cli", "serve", "--config", str(config),
                     "--port", str(lictor_port), "--egress", "regular"],
                    stdout=subprocess.DEVNULL, stderr=err, env=env))
            wait_ready(up_port, procs[0])
            wait_ready(lictor_port, procs[1], log=log)
            wait_ready(egress_port, procs[1], log=log)
            if args.tls:  # the client trusts the upstream's CA and lictor's
                trust = ssl.create_default_context(cafile=str(ca))
                trust.load_verify_locations(Path(tmp) / "var" / "egress-ca" /
                                            "mitmproxy-ca-cert.pem")
                for target in targets:
                    target.tls = trust
            samples = asyncio.run(latency(targets, args.requests, args.warmup))
            rates = [asyncio.run(throughput(t, args.requests, args.concurrency))
                     for t in targets]
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(10)

    result: dict[str, Any] = {**run_header(), "requests_each": args.requests,
                              "concurrency": args.concurrency, "upstream": scheme,
                              "request_bytes": len(payload(0))}
    for name, values, rate in zip(NAMES, samples, rates, strict=True):
        result[name] = {"p50_ms": round(percentile(values, 0.50), 3),
                        "p99_ms": round(percentile(values, 0.99), 3),
                        "mean_ms": round(statistics.fmean(values), 3),
                        "req_per_s": round(rate, 1)}
    for name in NAMES[1:]:
        result[f"{name}_added"] = {
            q: round(result[name][q] - result["direct"][q], 3) for q in ("p50_ms", "p99_ms")}
    result["ratio_egress_model_over_gateway_p50"] = round(
        result["egress_model"]["p50_ms"] / result["gateway"]["p50_ms"], 2)

    print(f"egress vs gateway, {scheme} upstream, {args.requests} requests each, "
          f"{result['request_bytes']} B "
          f"requests, default packs, audit on; throughput at concurrency {args.concurrency}")
    print(f"{'':18} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for name in NAMES:
        row = result[name]
        print(f"{name:18} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f} {row['req_per_s']:8.1f}")
    for name in NAMES[1:]:
        row = result[f"{name}_added"]
        print(f"{name + '_added':18} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f}")
    print(f"egress (model path) / gateway at p50: "
          f"{result['ratio_egress_model_over_gateway_p50']}x")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
