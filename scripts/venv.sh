# Sourced by scripts/test.sh and scripts/bench.sh.
# cached_venv DIR PIP_ARGS...: a Python virtualenv at DIR with PIP_ARGS installed, made
# once and reused while DIR/.ready exists (the callers put the versions in DIR's name).
cached_venv() {
    local dir=$1
    shift
    if [ ! -f "$dir/.ready" ]; then
        echo "setting up $dir"
        rm -rf "$dir"
        python3 -m venv "$dir"
        "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
        touch "$dir/.ready"
    fi
}
