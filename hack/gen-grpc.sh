#!/usr/bin/env bash
# Regenerates model_server/proto/grpc_predict_v2_pb2.py(.pyi) from the vendored .proto with
# grpcio-tools (the test extra pins it; its protoc matches the pinned protobuf runtime). The
# generated code is committed; tests/model_server/test_server_grpc.py fails when it is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m grpc_tools.protoc --proto_path=model_server/proto \
  --python_out=model_server/proto --pyi_out=model_server/proto \
  model_server/proto/grpc_predict_v2.proto
# A pool of its own: the messages' names (inference.*) are those of every OIP client's
# generated code (tritonclient's, ...), which a process may import beside ours.
sed -i 's/_descriptor_pool.Default().AddSerializedFile(/_descriptor_pool.DescriptorPool().AddSerializedFile(/' \
  model_server/proto/grpc_predict_v2_pb2.py
grep -q 'DescriptorPool().AddSerializedFile' model_server/proto/grpc_predict_v2_pb2.py
echo "wrote model_server/proto/grpc_predict_v2_pb2.py and .pyi"
