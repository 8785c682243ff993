#!/usr/bin/env bash
# Build tools/kubecp (etcd + kube-apiserver + kube-controller-manager + kubectl in one
# multi-call binary) into a cache directory outside the repository, keyed by its
# sources and the Go toolchain. A second call with unchanged inputs reuses the binary.
#
# The last line on stdout is the absolute path of the binary:
#   KUBECP="$(scripts/build-kubecp.sh | tail -n 1)"
#
# Environment:
#   KUBECP_CACHE_DIR    where binaries are kept (default
#                       ${XDG_CACHE_HOME:-$HOME/.cache}/prometheus-metrics-adapter/kubecp)
#   KUBECP_BUILD_JOBS   go build -p (default: min(2, nproc)); each compile of the large
#                       Kubernetes packages and the final link take 1-3 GiB
#   KUBECP_FORCE=1      rebuild even if a cached binary exists
#   KUBECP_CACHE_KEEP   how many keyed binaries to keep after a build (default 3)
# Progress goes to stderr; only the "reusing"/"built" lines and the path go to stdout.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src_dir="$repo_root/tools/kubecp"
cache_root="${KUBECP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prometheus-metrics-adapter/kubecp}"

command -v go >/dev/null 2>&1 || { echo "build-kubecp: 'go' not found on PATH" >&2; exit 1; }
command -v sha256sum >/dev/null 2>&1 || { echo "build-kubecp: 'sha256sum' not found" >&2; exit 1; }

# Everything that affects the output goes into the key: the module's sources, the Go
# toolchain and the build recipe. Bump recipe when the go build invocation changes.
recipe='v2: CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w" + component-base version stamp'
go_version="$(cd "$src_dir" && go version)"
key="$(
  {
    printf 'go version: %s\nrecipe: %s\n' "$go_version" "$recipe"
    cd "$src_dir"
    for f in go.mod go.sum $(LC_ALL=C ls -- *.go); do
      printf '== %s\n' "$f"
      cat -- "$f"
    done
  } | sha256sum | cut -c1-64
)"
out_dir="$cache_root/$key"
binary="$out_dir/kubecp"

if [[ -x "$binary" && "${KUBECP_FORCE:-0}" != 1 ]]; then
  touch -- "$out_dir" 2>/dev/null || true # mark as recently used for pruning
  echo "reusing $binary"
  echo "$binary"
  exit 0
fi

jobs="${KUBECP_BUILD_JOBS:-}"
if [[ -z "$jobs" ]]; then
  cores="$(nproc 2>/dev/null || echo 2)"
  jobs=$(( cores < 2 ? cores : 2 ))
fi

cd "$src_dir"
# The module's own go.mod/go.sum are complete: never rewrite them during a build.
export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off

# Version stamping as Kubernetes' hack/lib/version.sh does it, from the module versions.
read -r k8s_version k8s_time < <(go list -m -f '{{.Version}} {{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
[[ "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\. ]] || { echo "build-kubecp: unexpected k8s.io/kubernetes version '$k8s_version'" >&2; exit 1; }
vpkg=k8s.io/component-base/version
ldflags="-s -w"
ldflags+=" -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=${BASH_REMATCH[1]} -X $vpkg.gitMinor=${BASH_REMATCH[2]}"
# The proxy does not serve the commit hash, so gitCommit is left empty rather than "$Format:%H$".
ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=$k8s_time -X $vpkg.gitCommit="

mkdir -p "$cache_root"
tmp_dir="$(mktemp -d "$cache_root/.build.XXXXXX")"
chmod 755 "$tmp_dir"
trap 'rm -rf -- "$tmp_dir"' EXIT

echo "build-kubecp: building kubecp for k8s.io/kubernetes $k8s_version with $go_version (-p $jobs) ..." >&2
start="$(date +%s.%N)"
go build -p "$jobs" -trimpath -buildvcs=false -ldflags "$ldflags" -o "$tmp_dir/kubecp" .
end="$(date +%s.%N)"

# Publish with one rename, so that no caller ever sees a half-written binary.
rm -rf -- "$out_dir" # only there with KUBECP_FORCE=1 (or a broken earlier entry)
if ! mv -T -- "$tmp_dir" "$out_dir" 2>/dev/null; then
  # A concurrent build of the same key won the race; its binary is just as good.
  [[ -x "$binary" ]] || { echo "build-kubecp: could not publish $binary" >&2; exit 1; }
fi

# Prune: keep the KUBECP_CACHE_KEEP (default 3) most recently built or used binaries.
keep="${KUBECP_CACHE_KEEP:-3}"
n=0
while IFS= read -r dir; do
  [[ "$(basename -- "$dir")" =~ ^[0-9a-f]{64}$ ]] || continue
  n=$((n + 1))
  if ((n > keep)); then
    rm -rf -- "$dir"
  fi
done < <(find "$cache_root" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)

elapsed="$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')"
echo "built $binary in ${elapsed}s"
echo "$binary"
