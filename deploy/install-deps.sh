#!/usr/bin/env bash
# install-deps.sh — installs every Debian package flashpool needs to build,
# run and test. Idempotent and non-interactive: packages already present are
# not touched, so calling it from `make run` / `make test` costs ~1 s.
set -euo pipefail

PKGS=(
  build-essential pkg-config clang
  libzmq3-dev libsodium-dev          # data + control plane, CurveZMQ
  libprotobuf-c-dev protobuf-c-compiler
  libibverbs-dev librdmacm-dev       # RDMA transport (builds; no device here)
  libvulkan-dev glslc mesa-vulkan-drivers vulkan-tools
  libcjson-dev libmicrohttpd-dev libpcre2-dev
  libssl-dev liburing-dev
  libcmocka-dev
  iproute2 curl
  python3-numpy                      # ../shared/tools comparison scripts
  nodejs                             # SDK / tokenizer cross-checks in tests
)

missing=()
# npm ships inside the nodejs package on some images; only ask apt for it when absent.
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
