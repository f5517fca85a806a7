#!/usr/bin/env bash
# Set-up for a fresh Debian/Ubuntu machine: makes sure a Vulkan adapter exists. With no GPU
# driver present it installs Mesa's CPU Vulkan driver (lavapipe) and the Vulkan loader.
set -euo pipefail

have_vulkan() {
  ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || return 1
  ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1 || return 1
}

if ! have_vulkan; then
  echo "setup: no Vulkan driver found; installing mesa-vulkan-drivers and libvulkan1" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from rustup.rs" >&2; exit 1; }
