"""A bounded HTTP/3 load generator on aioquic: C connections, each with S streams in flight.

    .venv-314/bin/python loadtests/h3load.py --port 8443 --connections 2 --streams 10 \\
        --requests 2000 --path /

Runs a fixed number of requests against 127.0.0.1 and stops; prints req/s and
latency percentiles. Meant to be read next to h2load's HTTP/2 figures on the same
server (docs/http3.md): the client is Python, so on a 2-core machine it is as much
a part of the figure as the server.
"""

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.h3_client import h3_connect


async def _connection(port: int, streams: int, count: int, path: str, latencies: list) -> int:
    done = 0
    async with h3_connect(port) as client:

        async def worker(share: int) -> None:
            nonlocal done
            for _ in range(share):
                started = time.perf_counter()
                response = await client.request("GET", path)
                latencies.append(time.perf_counter() - started)
                done += response.status == 200

        shares = [count // streams + (i < count % streams) for i in range(streams)]
        await asyncio.gather(*(worker(share) for share in shares))
    return done


async def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--path", default="/")
    args = parser.parse_args()
    latencies: list[float] = []
    per_conn = args.requests // args.connections
    started = time.perf_counter()
    ok = await asyncio.gather(
        *(
            _connection(args.port, args.streams, per_conn, args.path, latencies)
            for _ in range(args.connections)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(
        f"requests {len(latencies)} ok {sum(ok)} in {elapsed:.2f}s: {len(latencies) / elapsed:.0f} "
        f"req/s; latency p50 {q[49] * 1000:.1f} ms p99 {q[98] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
