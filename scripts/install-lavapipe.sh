#!/usr/bin/env bash
# Installs a software Vulkan driver that Dawn (npm `webgpu`) accepts, so the
# webgpu backend's numerics tests run on a CPU-only Debian 12 machine: Mesa 25
# lavapipe from bookworm-backports (Debian 12's own Mesa 22 is refused by
# Dawn). Idempotent; needs root; about 10 s.
set -euo pipefail
if dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q '^2[5-9]\.'; then exit 0; fi
uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
  > /etc/apt/sources.list.d/backports.sources
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null
