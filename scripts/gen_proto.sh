#!/usr/bin/env bash
# Regenerates internal/serve/grpcapi/pb from the .proto files beside it
# (make proto): Debian's protobuf-compiler with protoc-gen-go and
# protoc-gen-go-grpc at the versions pinned below, installed from the Go
# module proxy into GOBIN when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
gen_go=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
gen_grpc=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
bin=$(go env GOPATH)/bin
command -v protoc >/dev/null || { echo "error: protoc is missing: apt-get install protobuf-compiler" >&2; exit 1; }
[ -x "$bin/protoc-gen-go" ] || go install "$gen_go"
[ -x "$bin/protoc-gen-go-grpc" ] || go install "$gen_grpc"
src=internal/serve/grpcapi/proto
rm -rf internal/serve/grpcapi/pb
PATH=$bin:$PATH protoc -I "$src" -I /usr/include \
  --go_out=. --go_opt=module=github.com/xcept/xcept \
  --go-grpc_out=. --go-grpc_opt=module=github.com/xcept/xcept \
  $(cd "$src" && find . -name '*.proto' | sed 's#^\./##' | sort)
echo "generated internal/serve/grpcapi/pb"
