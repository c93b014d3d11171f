#!/usr/bin/env bash
# A hot standby of $PRIMARY_HOST (compose only): clone the primary once, then stream from it.
set -euo pipefail
: "${PRIMARY_HOST:?PRIMARY_HOST names the primary}"
if [[ ! -s "${PGDATA}/PG_VERSION" ]]; then
    until pg_isready -q -h "$PRIMARY_HOST" -U postgres; do sleep 1; done
    # -R writes standby.signal and primary_conninfo; -X stream keeps WAL while copying.
    pg_basebackup -h "$PRIMARY_HOST" -U postgres -D "$PGDATA" -R -X stream -c fast
    chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on
