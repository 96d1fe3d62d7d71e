# Shared helpers for scripts/bench-*.sh (sourced, not run). They start a private easd on a
# temporary data dir and talk to it with eascmd.
#   BIN      directory with easd, eascmd, eas-worker (default: bin/, from make build)
#   ORT_LIB  ONNX Runtime library (default: .cache/libonnxruntime.so)
#   RESULTS  where result JSON files go (created)
BIN=${OPENEAS_BIN:-$PWD/bin}
ORT_LIB=${OPENEAS_ORT_LIB:-$PWD/.cache/libonnxruntime.so}
export OPENEAS_ORT_LIB=$ORT_LIB
RESULTS=${BENCH_RESULTS:-$PWD/.data/bench}
mkdir -p "$RESULTS"
WORK=$(mktemp -d)
PIDS=()

bench_cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap bench_cleanup EXIT

# start_easd [TAG [EASD FLAGS...]]: starts easd on a free loopback port, on data dir
# $WORK/data (or $WORK/data-TAG); sets EAS_ENDPOINT and EAS_ADMIN_TOKEN.
start_easd() {
	local tag=${1:-}
	[ $# -gt 0 ] && shift
	local data=$WORK/data${tag:+-$tag} log=$WORK/easd${tag:+-$tag}.log
	"$BIN/easd" serve --data-dir "$data" --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
	PIDS+=($!)
	local addr="" i
	for i in $(seq 300); do
		addr=$(grep -o 'easd serving.*addr=127\.0\.0\.1:[0-9]*' "$log" | grep -o '127\.0\.0\.1:[0-9]*' | head -1 || true)
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || { echo "easd did not start:"; cat "$log"; exit 1; }
	export EAS_ENDPOINT=http://$addr EAS_ADMIN_TOKEN=$(cat "$data/admin.token")
	EASD_ADDR=$addr
	EASD_PID=${PIDS[-1]}
}

eascmd() { "$BIN/eascmd" "$@"; }

# json_field FILE KEY: a top-level string or number field of a JSON document (no jq needed).
json_field() {
	grep -o "\"$2\": *\"\?[^\",}]*" "$1" | head -1 | sed 's/.*: *"\?//'
}

# start_direct_worker BUNDLE_DIR: runs an eas-worker outside easd (for a no-gateway
# measurement); sets DIRECT_ADDR.
start_direct_worker() {
	"$BIN/eas-worker" --bundle "$1" --name direct --listen 127.0.0.1:0 >"$WORK/direct.out" 2>"$WORK/direct.err" &
	PIDS+=($!)
	local i
	for i in $(seq 600); do
		grep -q '"ready"' "$WORK/direct.out" 2>/dev/null && break
		sleep 0.1
	done
	DIRECT_ADDR=$(grep -o '"addr":"[^"]*"' "$WORK/direct.out" | head -1 | cut -d'"' -f4)
	[ -n "$DIRECT_ADDR" ] || { echo "direct worker did not start:"; cat "$WORK/direct.err"; exit 1; }
}

machine() {
	echo "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs online"
}

# http_get URL_PATH: GET from easd (curl when installed, else bash's /dev/tcp).
http_get() {
	if command -v curl >/dev/null; then
		curl -fsS "$EAS_ENDPOINT$1"
		return
	fi
	exec 3<>"/dev/tcp/${EASD_ADDR%:*}/${EASD_ADDR#*:}"
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" "$EASD_ADDR" >&3
	cat <&3
	exec 3<&-
}

# worker_pids SERVICE: the eas-worker processes easd runs for SERVICE.
worker_pids() {
	local f pid
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		{ tr "\0" " " <"$f"; } 2>/dev/null | grep -q "eas-worker .*--name $1 " && echo "$pid"
	done
	return 0
}
