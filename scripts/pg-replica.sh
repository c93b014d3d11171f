#!/usr/bin/env bash
# A local PostgreSQL streaming replica (hot standby) of the primary, for tests of read routing.
#
#   bash scripts/pg-replica.sh [ensure]   create or start the replica; a no-op when it is healthy
#   bash scripts/pg-replica.sh stop       stop the replica (its data directory stays)
#   bash scripts/pg-replica.sh status     print its state; exit 0 when it streams, 3 otherwise
#   bash scripts/pg-replica.sh url        print the connection URL of the replica
#
# Needs root (it runs PostgreSQL's tools as the postgres OS user) or the postgres user itself,
# the primary on 127.0.0.1:$PG_PRIMARY_PORT with trust auth for the postgres role, and the
# server binaries under /usr/lib/postgresql/<version>/bin (Debian/Ubuntu packages).
# Settings (environment): PG_PRIMARY_PORT (5432), PG_REPLICA_PORT (5433), PG_REPLICA_DATA,
# PG_REPLICA_LOG_DIR, PG_VERSION (the newest in /etc/postgresql by default).
set -euo pipefail

PRIMARY_HOST=127.0.0.1
PRIMARY_PORT="${PG_PRIMARY_PORT:-5432}"
REPLICA_PORT="${PG_REPLICA_PORT:-5433}"
DATA="${PG_REPLICA_DATA:-/var/lib/postgresql/replica-${REPLICA_PORT}}"
LOG_DIR="${PG_REPLICA_LOG_DIR:-/var/log/postgresql}"
SERVER_LOG="${LOG_DIR}/replica-${REPLICA_PORT}.log"
SCRIPT_LOG="${LOG_DIR}/pg-replica-${REPLICA_PORT}.script.log"
LOCK_FILE="/tmp/pg-replica-${REPLICA_PORT}.lock"
START_TIMEOUT=60
STREAM_TIMEOUT=30

log() {
    local line
    line="$(date '+%Y-%m-%d %H:%M:%S') pg-replica: $*"
    echo "pg-replica: $*" >&2
    { echo "$line" >>"$SCRIPT_LOG"; } 2>/dev/null || true
}

die() {
    log "ERROR: $*"
    exit 1
}

pg_version() {
    if [[ -n "${PG_VERSION:-}" ]]; then
        echo "$PG_VERSION"
        return
    fi
    [[ -d /etc/postgresql ]] || die "no /etc/postgresql: install PostgreSQL (apt-get install postgresql)"
    local version
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf "%f\n" | sort -V | tail -n 1)"
    [[ -n "$version" ]] || die "no cluster under /etc/postgresql"
    echo "$version"
}

VERSION=""
BIN=""
find_server() {  # set VERSION and BIN; commands that talk to PostgreSQL call this first
    VERSION="$(pg_version)"
    BIN="/usr/lib/postgresql/${VERSION}/bin"
    [[ -x "$BIN/pg_ctl" ]] || die "no $BIN/pg_ctl: install the postgresql-${VERSION} server package"
}

# Run a PostgreSQL tool as the postgres OS user.
as_pg() {
    if [[ "$(id -un)" == postgres ]]; then
        "$@"
    elif [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        die "run as root or as the postgres user (now: $(id -un))"
    fi
}

psql_at() {  # psql_at PORT SQL: one unaligned, tuples-only answer; fails if the server is down
    "$BIN/psql" -X -h "$PRIMARY_HOST" -p "$1" -U postgres -d postgres -Atq \
        -v ON_ERROR_STOP=1 -c "$2" 2>/dev/null
}

replica_url() {
    echo "postgresql://postgres@${PRIMARY_HOST}:${REPLICA_PORT}/postgres"
}

answers() {  # answers PORT: the server on PORT accepts connections
    "$BIN/pg_isready" -q -h "$PRIMARY_HOST" -p "$1" -t 2 >/dev/null 2>&1
}

in_recovery() {
    [[ "$(psql_at "$REPLICA_PORT" 'SELECT pg_is_in_recovery()' || true)" == t ]]
}

streaming() {
    [[ "$(psql_at "$REPLICA_PORT" 'SELECT status FROM pg_stat_wal_receiver' || true)" == streaming ]]
}

running_here() {  # a server runs on our data directory
    [[ -f "$DATA/postmaster.pid" ]] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

show_server_log() {
    if [[ -f "$SERVER_LOG" ]]; then
        echo "---- last lines of $SERVER_LOG ----" >&2
        tail -n 30 "$SERVER_LOG" >&2 || true
    fi
}

prepare_logs() {
    mkdir -p "$LOG_DIR"
    touch "$SERVER_LOG" "$SCRIPT_LOG"
    chown postgres "$SERVER_LOG" 2>/dev/null || true
}

check_primary() {
    answers "$PRIMARY_PORT" || die "the primary does not answer on ${PRIMARY_HOST}:${PRIMARY_PORT}; start it first (pg_ctlcluster --skip-systemctl-redirect ${VERSION} main start)"
    local level
    level="$(psql_at "$PRIMARY_PORT" 'SHOW wal_level')" || die "cannot query the primary as role postgres on port ${PRIMARY_PORT} (is trust auth set for 127.0.0.1?)"
    [[ "$level" == replica || "$level" == logical ]] || die "the primary has wal_level=${level}; set wal_level=replica and restart it"
    [[ "$(psql_at "$PRIMARY_PORT" 'SHOW max_wal_senders')" -gt 0 ]] || die "the primary has max_wal_senders=0; raise it and restart"
}

# The primary must accept replication connections from 127.0.0.1. pg_hba.conf takes the first
# matching line, so ours goes at the top, where no stricter replication rule can shadow it.
allow_replication() {
    local hba rule
    hba="$(psql_at "$PRIMARY_PORT" 'SHOW hba_file')" || die "cannot read hba_file from the primary"
    rule="host replication all 127.0.0.1/32 trust"
    if grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust[[:space:]]*$' "$hba"; then
        return
    fi
    log "allowing local replication connections in $hba"
    local tmp
    tmp="$(mktemp)"
    { echo "# Local streaming replica for tests (added by scripts/pg-replica.sh)."; echo "$rule"; cat "$hba"; } >"$tmp"
    cat "$tmp" >"$hba"  # keeps the file's owner and mode
    rm -f "$tmp"
    psql_at "$PRIMARY_PORT" 'SELECT pg_reload_conf()' >/dev/null || die "could not reload the primary"
    sleep 1
}

# Settings a hot standby must hold at least as high as its primary, or it refuses to start.
primary_setting() {
    psql_at "$PRIMARY_PORT" "SHOW $1"
}

write_config() {
    local socket_dir=/var/run/postgresql
    [[ -d "$socket_dir" ]] || socket_dir=/tmp
    cat >"$DATA/postgresql.conf" <<EOF
# Local hot standby of ${PRIMARY_HOST}:${PRIMARY_PORT}, written by scripts/pg-replica.sh.
port = ${REPLICA_PORT}
listen_addresses = '${PRIMARY_HOST}'
unix_socket_directories = '${socket_dir}'
hot_standby = on
hot_standby_feedback = on
cluster_name = 'replica-${REPLICA_PORT}'
hba_file = '${DATA}/pg_hba.conf'
ident_file = '${DATA}/pg_ident.conf'
max_connections = $(primary_setting max_connections)
max_worker_processes = $(primary_setting max_worker_processes)
max_wal_senders = $(primary_setting max_wal_senders)
max_prepared_transactions = $(primary_setting max_prepared_transactions)
max_locks_per_transaction = $(primary_setting max_locks_per_transaction)
shared_buffers = 32MB
fsync = off
EOF
    cat >"$DATA/pg_hba.conf" <<'EOF'
# Local test replica: trust local connections only.
local   all             all                     trust
host    all             all     127.0.0.1/32    trust
host    replication     all     127.0.0.1/32    trust
EOF
    : >"$DATA/pg_ident.conf"
    chown postgres:postgres "$DATA/postgresql.conf" "$DATA/pg_hba.conf" "$DATA/pg_ident.conf"
}

stop_replica() {
    if running_here; then
        log "stopping the replica on port ${REPLICA_PORT}"
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t "$START_TIMEOUT" stop >/dev/null
    fi
}

start_replica() {
    log "starting the replica on port ${REPLICA_PORT} (log: $SERVER_LOG)"
    # 9>&-: the server must not inherit the lock descriptor, or it would hold the lock forever.
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w -t "$START_TIMEOUT" start >/dev/null 9>&-
}

create_replica() {
    stop_replica || true
    log "creating the replica in $DATA with pg_basebackup from port ${PRIMARY_PORT}"
    rm -rf "$DATA"
    mkdir -p "$(dirname "$DATA")"
    as_pg "$BIN/pg_basebackup" -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U postgres \
        -D "$DATA" -R -X stream -c fast --no-password \
        || die "pg_basebackup failed (see above)"
    chmod 700 "$DATA"
    write_config
    start_replica || { show_server_log; die "the new replica did not start"; }
}

wait_for_streaming() {
    local waited=0
    while ((waited < STREAM_TIMEOUT)); do
        if in_recovery && streaming; then
            return 0
        fi
        sleep 1
        waited=$((waited + 1))
    done
    return 1
}

healthy() {
    answers "$REPLICA_PORT" && in_recovery && streaming
}

ensure() {
    # The healthy case needs no privileges, so `make test` can run as an ordinary user once
    # root has created the replica.
    if healthy; then
        log "replica on port ${REPLICA_PORT} is up and streaming; nothing to do"
        return 0
    fi
    prepare_logs
    exec 9>"$LOCK_FILE"
    flock -w 300 9 || die "another pg-replica.sh holds $LOCK_FILE"

    check_primary
    allow_replication

    if answers "$REPLICA_PORT"; then
        if in_recovery; then
            if wait_for_streaming; then
                log "replica on port ${REPLICA_PORT} is up and streaming; nothing to do"
                return 0
            fi
            running_here || die "port ${REPLICA_PORT} has a standby that is not streaming and is not ours ($DATA); stop it first"
            log "the replica runs but does not stream (stale?); recreating it"
        else
            running_here || die "port ${REPLICA_PORT} is taken by a server that is not a standby; free the port or set PG_REPLICA_PORT"
            log "the server in $DATA is not in recovery (promoted?); recreating it"
        fi
        create_replica
    elif [[ -f "$DATA/PG_VERSION" && -f "$DATA/standby.signal" \
        && "$(cat "$DATA/PG_VERSION")" == "${VERSION%%.*}" ]]; then
        log "the replica's data directory exists but the server is down"
        if ! { start_replica && wait_for_streaming; }; then
            log "it did not come back streaming; recreating it"
            create_replica
        fi
    else
        [[ -e "$DATA" ]] && log "data directory $DATA is missing or broken; recreating it"
        create_replica
    fi

    wait_for_streaming || { show_server_log; die "the replica on port ${REPLICA_PORT} does not stream from the primary"; }
    log "replica on port ${REPLICA_PORT} is streaming from port ${PRIMARY_PORT}: $(replica_url)"
}

status() {
    if ! answers "$REPLICA_PORT"; then
        echo "replica on port ${REPLICA_PORT}: down (data: $DATA)"
        return 3
    fi
    local recovery receiver lag
    recovery="$(psql_at "$REPLICA_PORT" 'SELECT pg_is_in_recovery()' || echo '?')"
    receiver="$(psql_at "$REPLICA_PORT" 'SELECT status FROM pg_stat_wal_receiver' || true)"
    lag="$(psql_at "$REPLICA_PORT" "SELECT COALESCE(round(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::numeric, 1)::text, 'n/a')" || echo '?')"
    echo "replica on port ${REPLICA_PORT}: up, in recovery: ${recovery}, wal receiver: ${receiver:-none}, seconds since last replayed transaction: ${lag} (data: $DATA)"
    [[ "$recovery" == t && "$receiver" == streaming ]] || return 3
}

main() {
    local command="${1:-ensure}"
    case "$command" in
        ensure) find_server; ensure ;;
        stop) find_server; prepare_logs; stop_replica ;;
        status) find_server; status ;;
        url) replica_url ;;
        -h | --help | help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' ;;
        *) die "unknown command '$command'; use one of: ensure, stop, status, url" ;;
    esac
}

main "$@"
