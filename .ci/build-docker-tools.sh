#!/usr/bin/env bash
# Builds the Go programs of the sandbox's Docker runtime (`sandbox:up -- --runtime docker`), each cached
# outside the repo under $KRYPTON_SANDBOX_CACHE (default /var/cache/krypton-sandbox), keyed by version
# (or, for our own entrypoint, by a hash of its source), so a second run skips the builds:
#   geth-v1.17.10/geth                 the real go-ethereum, static (CGO_ENABLED=0), ~90 MB, ~6-10 min on 2 cores
#   compose-v5.6.0/docker-compose      the Docker Compose CLI plugin from github.com/docker/compose/v5, ~2 min
#   entry-<sha256/12>/krypton-entry    test/sandbox/images/entry (the images' entrypoint: witness line, exec)
# Modules come from the Go module proxy into $cache/go (GOPATH). Each build goes to a temp dir first and
# is moved into place only when it succeeded, so a half build is never taken for a cached one.
# Prints one line per program. Needs the `go` toolchain (>= 1.26 for compose v5.6.0).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${KRYPTON_SANDBOX_CACHE:-/var/cache/krypton-sandbox}"
geth_version="v1.17.10"
compose_version="v5.6.0"

export GOPATH="$cache/go" GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=local
mkdir -p "$cache"
command -v go >/dev/null || { echo "build-docker-tools: the go toolchain is not on PATH" >&2; exit 1; }

# install_to <final dir> <binary name> <command that writes the binary into $tmp…>
install_to() {
  local final="$1" name="$2"
  shift 2
  if [[ -x "$final/$name" ]]; then
    echo "build-docker-tools: cached $final/$name"
    return
  fi
  local tmp
  tmp="$(mktemp -d "$cache/.build.XXXXXX")"
  local started=$SECONDS
  if ! (cd "$tmp" && "$@" "$tmp/$name") >"$tmp.log" 2>&1; then
    echo "build-docker-tools: building $name failed:" >&2
    tail -n 20 "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    exit 1
  fi
  mkdir -p "$final"
  mv "$tmp/$name" "$final/$name"
  rm -rf "$tmp" "$tmp.log"
  echo "build-docker-tools: built $final/$name in $((SECONDS - started)) s"
}

build_geth() { GOBIN="$(dirname "$1")" go install "github.com/ethereum/go-ethereum/cmd/geth@$geth_version"; }

# compose's go.mod has exclude directives, so `go install …@version` refuses it: build a copy of the
# module's source (from the module cache) as the main module instead.
build_compose() {
  local out="$1" src
  src="$(go mod download -json "github.com/docker/compose/v5@$compose_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$src" ]] || { echo "compose $compose_version source not found in the module cache" >&2; return 1; }
  cp -r "$src" ./compose-src && chmod -R u+w ./compose-src
  (cd ./compose-src && go build -trimpath -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=$compose_version" -o "$out" ./cmd)
  rm -rf ./compose-src
}

entry_src="$repo/test/sandbox/images/entry"
entry_hash="$(cat "$entry_src/go.mod" "$entry_src/main.go" | sha256sum | cut -c1-12)"
build_entry() { (cd "$entry_src" && go build -trimpath -ldflags "-s -w" -o "$1" .); }

install_to "$cache/geth-$geth_version" geth build_geth
install_to "$cache/compose-$compose_version" docker-compose build_compose
install_to "$cache/entry-$entry_hash" krypton-entry build_entry
