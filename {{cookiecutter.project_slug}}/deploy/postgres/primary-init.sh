#!/usr/bin/env bash
# Run once by the postgres image when it creates the primary's data directory (compose only):
# let the replica container connect for streaming replication.
set -euo pipefail
echo "host replication all all trust" >> "${PGDATA}/pg_hba.conf"
