"""The Open Inference Protocol over gRPC (GRPCInferenceService), beside REST.

gRPC things only: messages to tensors and back, :class:`ServerError` to status codes. What
the server does is the data plane's, shared with REST: the same decoding checks and messages,
batching, runtime and metrics (an infer request is counted under the HTTP status its error
would have had, so the canary analysis reads both transports alike). Responses carry their
tensors in ``raw_output_contents`` (little-endian, BYTES length-prefixed), as Triton does and
``tritonclient.grpc`` reads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
import orjson

from model_server.codec import Data, Decoded, Prediction, Tensor, binary_tensor
from model_server.dataplane import DataPlane
from model_server.errors import InvalidInput, ServerError
from model_server.model import LoadedModel
from model_server.proto import grpc_predict_v2_pb2 as pb
from model_server.settings import ServerSettings

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_RAW_DTYPES = {"INT64": np.dtype("<i8"), "FP64": np.dtype("<f8"), "BOOL": np.dtype(np.bool_)}

Context = grpc.aio.ServicerContext[Any, Any]


def status_code(error: ServerError) -> grpc.StatusCode:
    return STATUS_CODES.get(error.status_code, grpc.StatusCode.INTERNAL)


class InferenceService:
    """The six methods, each a coroutine taking the request message and the context."""

    def __init__(self, data_plane: DataPlane) -> None:
        self.data_plane = data_plane

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> Any:
        return pb.ServerLiveResponse(live=self.data_plane.live())

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> Any:
        return pb.ServerReadyResponse(ready=self.data_plane.ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> Any:
        ready = self.data_plane.model_ready(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context) -> Any:
        metadata = self.data_plane.server_metadata()
        return pb.ServerMetadataResponse(
            name=metadata["name"], version=metadata["version"], extensions=metadata["extensions"]
        )

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> Any:
        metadata = self.data_plane.model_metadata(request.name, request.version or None)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[
                tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                for t in metadata["inputs"]
            ],
            outputs=[
                tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                for t in metadata["outputs"]
            ],
        )

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> Any:
        outputs = [o.name for o in request.outputs] or None
        return await self.data_plane.infer_with(
            request.model_name,
            request.model_version or None,
            lambda decoder: decoder.decode_tensors(request.id, tensors_of(request), outputs),
            encode,
            self.data_plane.provenance.of_headers(_metadata(context)),
        )


def _metadata(context: Context) -> list[tuple[bytes, bytes]]:
    """The call's metadata as (name, value) bytes (binary -bin values are left out)."""
    return [
        (str(key).encode(), value.encode())
        for key, value in context.invocation_metadata() or ()
        if isinstance(value, str)
    ]


def tensors_of(request: pb.ModelInferRequest) -> list[Tensor]:
    """The request's inputs as (name, shape, datatype, data), from raw or typed contents."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; send one per input "
            "or none",
            "schema",
        )
    tensors: list[Tensor] = []
    for position, item in enumerate(request.inputs):
        shape = list(item.shape)
        data: Data
        if raw:
            if item.HasField("contents"):
                raise InvalidInput(
                    f"input {item.name!r} has both contents and raw_input_contents", "schema"
                )
            data = binary_tensor(item.name, item.datatype, raw[position])
        else:
            field = _CONTENTS.get(item.datatype)
            if field is None:
                raise InvalidInput(
                    f"input {item.name!r}: datatype {item.datatype!r} needs raw_input_contents "
                    f"or is unknown; one of {sorted(_CONTENTS)} or FP16 as raw",
                    "datatype",
                )
            values = getattr(item.contents, field)
            if item.datatype == "BYTES":
                data = [_text(item.name, v) for v in values]
            elif item.datatype in ("FP64", "FP32"):
                data = np.asarray(values, dtype=np.float64)
            else:
                data = list(values)
        tensors.append((item.name, shape, item.datatype, data))
    return tensors


def _text(name: str, value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError as error:
        raise InvalidInput(f"input {name!r}: a BYTES element is not UTF-8", "datatype") from error


def encode(model: LoadedModel, request: Decoded, prediction: Prediction) -> pb.ModelInferResponse:
    """The response: the same outputs, names, shapes and datatypes as REST, as raw tensors."""
    response = pb.ModelInferResponse(
        model_name=model.name, model_version=model.version, id=request.id
    )
    if request.want_predict:
        response.outputs.add(name="predict", datatype=prediction.datatype, shape=[request.rows])
        response.raw_output_contents.append(_raw(prediction.datatype, prediction.predictions))
    if request.want_proba and prediction.probabilities is not None:
        output = response.outputs.add(
            name="predict_proba", datatype="FP64", shape=[request.rows, len(model.classes or ())]
        )
        output.parameters["classes"].string_param = orjson.dumps(model.classes).decode()
        response.raw_output_contents.append(_raw("FP64", prediction.probabilities))
    return response


def _raw(datatype: str, values: list[Any]) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in values:
            data = value.encode() if isinstance(value, str) else str(value).encode()
            parts.append(len(data).to_bytes(4, "little") + data)
        return b"".join(parts)
    return np.asarray(values, dtype=_RAW_DTYPES[datatype]).tobytes()


def _unary(
    method: Callable[[Any, Context], Awaitable[Any]], request_type: Any
) -> grpc.RpcMethodHandler[Any, Any]:
    async def handler(request: Any, context: Context) -> Any:
        try:
            return await method(request, context)
        except ServerError as error:
            await context.abort(status_code(error), error.message)
        except Exception as error:
            log.exception("unhandled error in gRPC %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}")

    return grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=request_type.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )


def handlers(service: InferenceService) -> grpc.GenericRpcHandler:
    table = {
        "ServerLive": pb.ServerLiveRequest,
        "ServerReady": pb.ServerReadyRequest,
        "ModelReady": pb.ModelReadyRequest,
        "ServerMetadata": pb.ServerMetadataRequest,
        "ModelMetadata": pb.ModelMetadataRequest,
        "ModelInfer": pb.ModelInferRequest,
    }
    return grpc.method_handlers_generic_handler(
        SERVICE, {name: _unary(getattr(service, name), kind) for name, kind in table.items()}
    )


async def start(settings: ServerSettings, data_plane: DataPlane) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server on ``settings.grpc_port`` in the running loop; it and its port."""
    options = [
        ("grpc.max_receive_message_length", settings.max_request_bytes),
        ("grpc.max_send_message_length", -1),
        # Worker processes share the port; otherwise a second server on it is an error, not
        # a silent split of the traffic between two servers.
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
    ]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((handlers(InferenceService(data_plane)),))
    port = server.add_insecure_port(f"{_host(settings.host)}:{settings.grpc_port}")
    await server.start()
    log.info("gRPC on port %d", port)
    return server, port


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
