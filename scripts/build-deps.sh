#!/usr/bin/env bash
# What building needs beyond Rust and a C toolchain: OpenSSL's headers and pkg-config
# (librdkafka's TLS, for the Kafka bridge). Installed from Debian when missing and run as
# root; otherwise says what to install. Called by .ci/run and scripts/test.sh.
set -euo pipefail
if pkg-config --exists openssl 2>/dev/null; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing libssl-dev and pkg-config (OpenSSL for the Kafka bridge's TLS)"
    apt-get install -y -q libssl-dev pkg-config >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q libssl-dev pkg-config >/dev/null; }
else
    echo "error: OpenSSL's headers are missing: apt-get install libssl-dev pkg-config" >&2
    exit 1
fi
