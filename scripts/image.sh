#!/usr/bin/env bash
# Builds the container images with podman, FROM scratch, from binaries already built:
#   localhost/fix-engine:VERSION    fix-engine and fixctl          (images/engine.Containerfile)
#   localhost/fix-operator:VERSION  fix-operator and fixctl        (images/operator.Containerfile)
# Nothing is pulled. Each image holds the binaries (debug information stripped), the
# shared libraries they load (found with ldd), the CA certificates, a passwd file for the
# non-root user 65532 and writable /tmp and work directories; no shell.
#
# Usage: scripts/image.sh [--bin-dir DIR] [--tag TAG] [--registry REGISTRY] [engine|operator|all]
#   --bin-dir   where the binaries are (default: target/release if it has them, else
#               target/debug: the tests' own build)
#   --tag       the image tag (default: the workspace version)
#   --registry  the name prefix (default: localhost, podman's name for local images)
# Prints each image's name. To push to ECR, see the README ("Container images").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=
tag=
registry=localhost
which=all
while [ $# -gt 0 ]; do
    case $1 in
        --bin-dir) bin_dir=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --registry) registry=$2; shift 2 ;;
        engine|operator|all) which=$1; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument '$1' (see scripts/image.sh --help)" >&2; exit 2 ;;
    esac
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
tag=${tag:-$version}
if [ -z "$bin_dir" ]; then
    if [ -x "$root/target/release/fix-engine" ] && [ -x "$root/target/release/fix-operator" ]; then
        bin_dir=$root/target/release
    else
        bin_dir=$root/target/debug
    fi
fi
command -v podman >/dev/null || {
    echo "error: podman is not installed: apt-get install podman runc" >&2
    exit 1
}
for tool in ldd objcopy; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool is missing: apt-get install binutils libc-bin" >&2
        exit 1
    }
done
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || {
    echo "error: $certs is missing: apt-get install ca-certificates" >&2
    exit 1
}

# stage DIR WORKDIR BINARY...: a root file system with the binaries and what they need.
stage() {
    local dir=$1 workdir=$2 binary bin
    shift 2
    mkdir -p "$dir/usr/local/bin" "$dir/etc/ssl/certs" "$dir/tmp"
    chmod 1777 "$dir/tmp"
    for binary in "$@"; do
        bin=$bin_dir/$binary
        [ -x "$bin" ] || {
            echo "error: $bin is missing: build it first (cargo build --release -p fix-engine -p fix-operator, or run the tests)" >&2
            exit 1
        }
        objcopy --strip-all "$bin" "$dir/usr/local/bin/$binary"
        # Every library ldd resolves, and the dynamic loader, at the same paths.
        ldd "$bin" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do
            mkdir -p "$dir$(dirname "$lib")"
            cp -L "$lib" "$dir$lib"
        done
    done
    cp "$certs" "$dir/etc/ssl/certs/ca-certificates.crt"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nfix:x:65532:65532:fix:%s:/sbin/nologin\n' "$workdir" > "$dir/etc/passwd"
    printf 'root:x:0:\nfix:x:65532:\n' > "$dir/etc/group"
}

# build NAME WORKDIR BINARY...
build() {
    local name=$1 workdir=$2
    shift 2
    local ctx
    ctx=$(mktemp -d)
    stage "$ctx/rootfs" "$workdir" "$@"
    cp "$root/images/$name.Containerfile" "$ctx/Containerfile"
    # The work directory, copied to the user the image runs as (COPY --chown).
    mkdir -p "$ctx/work"
    local image=$registry/fix-$name:$tag
    podman build --quiet --build-arg "VERSION=$version" -t "$image" "$ctx" >/dev/null
    rm -rf "$ctx"
    echo "$image"
}

case $which in
    engine) build engine /var/lib/fix-engine fix-engine fixctl ;;
    operator) build operator /var/lib/fix-operator fix-operator fixctl ;;
    all)
        build engine /var/lib/fix-engine fix-engine fixctl
        build operator /var/lib/fix-operator fix-operator fixctl
        ;;
esac
