# Sourced by scripts/test.sh and scripts/bench.sh, after scripts/venv.sh.
#
# quickfix_venv CACHE_DIR: QuickFIX's Python engine (version $quickfix_version), built from
# its source package from the Python package registry into a virtualenv cached under
# CACHE_DIR, and reused while it is there. Building needs a C++ compiler and the Python
# headers (installed from Debian when missing and run as root) and takes about five
# minutes on two cores, once. QuickFIX's XML data dictionaries (FIX40 … FIX50SP2, FIXT11)
# are installed with it, under share/quickfix. Sets quickfix_venv_dir.
quickfix_version=1.16.0

quickfix_build_tools() {
    local missing=()
    command -v g++ >/dev/null || missing+=(g++)
    python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || missing+=(python3-dev)
    python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${missing[*]} (to build QuickFIX)"
        apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
    else
        echo "error: building QuickFIX $quickfix_version needs ${missing[*]}: apt-get install ${missing[*]}" >&2
        return 1
    fi
}

quickfix_venv() {
    local dir=$1/venv-quickfix-src-$quickfix_version
    if [ ! -f "$dir/.ready" ]; then
        quickfix_build_tools
        echo "building QuickFIX $quickfix_version from its source package (about 5 minutes, once)"
    fi
    cached_venv "$dir" "quickfix==$quickfix_version"
    quickfix_venv_dir=$dir
}
