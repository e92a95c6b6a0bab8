"""A closed-loop gRPC load generator for ModelInfer (what wrk is for REST), in its own process.

    python -m benchmarks.grpc_load --target 127.0.0.1:8081 --request <hex> --connections 32

``--connections`` requests are in flight at any time, spread over up to 4 channels (HTTP/2
connections); each sends the same serialized ModelInferRequest as raw bytes, so the client
does no protobuf work per call. Prints one JSON line: requests, errors, rps, p50_ms, p99_ms.
It is Python: at high rates the client itself is part of what is measured, alike for every
server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc

METHOD = "/inference.GRPCInferenceService/ModelInfer"


async def run(target: str, request: bytes, connections: int, duration: float) -> dict[str, float]:
    channels = [grpc.aio.insecure_channel(target) for _ in range(min(4, connections))]
    calls = [
        channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        for channel in channels
    ]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker(index: int) -> None:
        nonlocal errors
        call = calls[index % len(calls)]
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                await call(request, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = time.perf_counter() - began
    for channel in channels:
        await channel.close()
    latencies.sort()

    def percentile(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0
        )

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--request", required=True, help="the ModelInferRequest, hex")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10)
    args = parser.parse_args()
    result = asyncio.run(
        run(args.target, bytes.fromhex(args.request), args.connections, args.duration)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
