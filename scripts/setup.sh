#!/usr/bin/env bash
# Set-up for a fresh Debian/Ubuntu machine: makes sure a Vulkan adapter exists. With no GPU
# driver present it installs Mesa's CPU Vulkan driver (lavapipe) and the Vulkan loader.
set -euo pipefail

have_vulkan() {
  local libs icds
  libs=$(ldconfig -p 2>/dev/null || true)
  [[ "$libs" == *libvulkan.so.1* ]] || return 1
  icds=$(ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ /usr/local/share/vulkan/icd.d/ 2>/dev/null || true)
  [[ "$icds" == *.json* ]] || return 1
}

if ! have_vulkan; then
  echo "setup: no Vulkan driver found; installing mesa-vulkan-drivers and libvulkan1" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from rustup.rs" >&2; exit 1; }
