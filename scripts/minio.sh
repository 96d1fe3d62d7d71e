#!/usr/bin/env bash
# Builds the MinIO server used by the object-storage tests, once, into
# ${OPENEAS_CACHE:-$HOME/.cache/openeas}/minio/bin/minio (outside the repo, so a fresh clone on the
# same machine reuses it). Idempotent: a second run only prints the path.
# MinIO is AGPLv3: it is only ever run as a separate test process, never imported.
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin

# Pinned so every machine tests against the same server; the version `@latest` resolved to when
# this was written. Override with MINIO_VERSION=latest to try a newer one.
MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
cache=${OPENEAS_CACHE:-$HOME/.cache/openeas}
dir="$cache/minio"
bin="$dir/bin/minio"
stamp="$dir/version"

if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_VERSION" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir/bin"
# One build at a time, even when several test runs start together.
exec 9>"$dir/.lock"
flock 9
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_VERSION" ]; then
  echo "$bin"
  exit 0
fi

echo "minio.sh: building MinIO (first time, ~4 min, ~150 MB) into $dir/bin" >&2
rm -f "$bin" "$stamp"
# A scratch GOPATH-independent build: `go install` outside any module, binary into GOBIN.
( cd "$dir" && GOBIN="$dir/bin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$MINIO_VERSION" ) >&2
echo "$MINIO_VERSION" >"$stamp"
echo "minio.sh: MinIO ready" >&2
echo "$bin"
