"""Bare grpc.aio RecommenderService with empty handlers: the Python-gRPC floor.

The open-loop benchmark measures it side by side with the real stack, so the stack's CPU per
request and top rate can be read as a multiple of what one Python gRPC hop costs here.

    python -m loadtest.echo_server --port 0 --port-file /tmp/echo.port
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import grpc

from recserve.v1 import recommender_pb2, recommender_pb2_grpc


class EchoRecommender(recommender_pb2_grpc.RecommenderServiceServicer):
    async def Recommend(  # noqa: N802
        self, request: recommender_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> recommender_pb2.RecommendResponse:
        return recommender_pb2.RecommendResponse()

    async def RecordEvents(  # noqa: N802
        self, request: recommender_pb2.RecordEventsRequest, context: grpc.aio.ServicerContext
    ) -> recommender_pb2.RecordEventsResponse:
        return recommender_pb2.RecordEventsResponse(accepted=len(request.events))

    async def GetSimilarItems(  # noqa: N802
        self, request: recommender_pb2.GetSimilarItemsRequest, context: grpc.aio.ServicerContext
    ) -> recommender_pb2.GetSimilarItemsResponse:
        return recommender_pb2.GetSimilarItemsResponse()


async def serve(host: str, port: int, port_file: Path | None) -> None:
    server = grpc.aio.server()
    recommender_pb2_grpc.add_RecommenderServiceServicer_to_server(EchoRecommender(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    if port_file is not None:
        # Written after start() so a reader polling for the file can connect at once.
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.port_file))


if __name__ == "__main__":
    main()
