#!/usr/bin/env bash
# Builds the API server and etcd that the Kubernetes backend's tests run against (envtest), once,
# into ${OPENEAS_CACHE:-$HOME/.cache/openeas}/envtest (outside the repo, so a fresh clone on the same
# machine reuses them). Everything comes from the Go module proxy; no Docker, kind or downloads of
# release tarballs. Idempotent: a second run only prints the directory.
#   kube-apiserver v1.37.2 <- k8s.io/kubernetes/cmd/kube-apiserver (~10 min on 2 cores, first time)
#   etcd v3.7.3            <- go.etcd.io/etcd/server/v3 (~1 min)
# Prints the assets directory on stdout (what KUBEBUILDER_ASSETS / OPENEAS_ENVTEST_ASSETS expect);
# progress goes to stderr.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
cache=${OPENEAS_CACHE:-$HOME/.cache/openeas}
dir="$cache/envtest"
stamp="$dir/version"
want="kube-apiserver $KUBE_VERSION etcd $ETCD_VERSION"

ready() {
  [ -x "$dir/kube-apiserver" ] && [ -x "$dir/etcd" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]
}

if ready; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
# One build at a time, even when several test runs start together.
exec 9>"$dir/.lock"
flock 9
if ready; then
  echo "$dir"
  exit 0
fi
rm -f "$stamp"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off GOTOOLCHAIN=local
start=$(date +%s)

if [ ! -x "$dir/etcd" ] || ! "$dir/etcd" --version 2>/dev/null | grep -q "etcd Version: ${ETCD_VERSION#v}"; then
  echo "envtest.sh: building etcd $ETCD_VERSION (first time, ~1 min on 2 cores) into $dir" >&2
  src="$dir/src/etcd"
  rm -rf "$src" && mkdir -p "$src"
  # etcd's own go.mod has local replace lines, so `go install pkg@version` refuses it; a scratch
  # module that requires it builds the same code with the published sibling modules.
  (
    cd "$src"
    go mod init openeas.local/envtest-etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
    go build -trimpath -ldflags "-s -w" -o "$dir/etcd.new" go.etcd.io/etcd/server/v3
  ) >&2
  mv -f "$dir/etcd.new" "$dir/etcd"
fi

if [ ! -x "$dir/kube-apiserver" ] || ! "$dir/kube-apiserver" --version 2>/dev/null | grep -q "Kubernetes $KUBE_VERSION\$"; then
  echo "envtest.sh: building kube-apiserver $KUBE_VERSION (first time, ~10 min on 2 cores) into $dir" >&2
  src="$dir/src/kube-apiserver"
  rm -rf "$src" && mkdir -p "$src"
  (
    cd "$src"
    go mod download "k8s.io/kubernetes@$KUBE_VERSION"
    kmod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
    [ -f "$kmod" ] || { echo "envtest.sh: cannot find go.mod of k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging
    # paths that do not exist outside its repo. Copy those replace lines, pointing each at the
    # published release of the same code (v1.X.Y ships staging as v0.X.Y).
    staging=v0.${KUBE_VERSION#v1.}
    {
      echo "module openeas.local/envtest-apiserver"
      echo
      echo "go 1.26.0"
      echo
      echo "require k8s.io/kubernetes $KUBE_VERSION"
      echo
      echo "replace ("
      sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9.-]*\) => ./staging/src/k8s.io/.*$#\t\1 => \1 '"$staging"'#p' "$kmod"
      echo ")"
    } >go.mod
    n=$(grep -c "=> k8s.io/" go.mod || true)
    echo "envtest.sh: $n staging modules replaced by $staging" >&2
    [ "$n" -gt 0 ] || { echo "envtest.sh: no staging replace lines found in $kmod" >&2; exit 1; }
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" >/dev/null
    pkg=k8s.io/component-base/version
    minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
    go build -trimpath -o "$dir/kube-apiserver.new" \
      -ldflags "-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
      k8s.io/kubernetes/cmd/kube-apiserver
  ) >&2
  mv -f "$dir/kube-apiserver.new" "$dir/kube-apiserver"
fi

# The module sources stay in Go's module cache; the scratch modules are not needed any more.
rm -rf "$dir/src"
echo "$want" >"$stamp"
echo "envtest.sh: ready in $dir ($(($(date +%s) - start)) s)" >&2
echo "$dir"
