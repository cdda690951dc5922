#!/usr/bin/env bash
# Regenerates onnx.pb.swift, the Swift of ONNX's protobuf messages, which is checked in so that a
# build needs neither protoc nor swift-protobuf's plugin (whose first build takes minutes):
#   Sources/ONNXProto/regenerate.sh
# It takes onnx.proto from the wheel of the onnx package on PyPI (the version below), protoc from
# Debian's protobuf-compiler, and builds protoc-gen-swift from the swift-protobuf version that
# Package.swift names, then writes onnx.pb.swift beside this script.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ONNX_VERSION=1.23.2
PROTOBUF_VERSION=1.39.0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler" >&2; exit 1; }
python3 -m pip download -q --no-deps --only-binary=:all: -d "$work" "onnx==$ONNX_VERSION"
python3 - "$work" <<'PY'
import glob, sys, zipfile
work = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(work + "/onnx-*.whl")[0])
open(work + "/onnx.proto", "wb").write(wheel.read("onnx/onnx.proto"))
PY
git clone -q https://github.com/apple/swift-protobuf "$work/swift-protobuf"
git -C "$work/swift-protobuf" checkout -q "$PROTOBUF_VERSION"
(cd "$work/swift-protobuf" && swift build -c release --product protoc-gen-swift >&2)
protoc --plugin="$work/swift-protobuf/.build/release/protoc-gen-swift" --swift_opt=Visibility=Public \
    --proto_path="$work" --swift_out="$here" "$work/onnx.proto"
echo "wrote $here/onnx.pb.swift from onnx $ONNX_VERSION's onnx.proto" >&2
