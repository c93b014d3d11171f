#!/usr/bin/env bash
# CI: start a hot-standby PostgreSQL streaming from the `postgres` service container.
#
#   bash scripts/ci-replica.sh CONTAINER_ID [IMAGE]   (make ci-replica PG_CONTAINER=...)
#
# IMAGE must be the primary's image (default postgres:17, as in ci.yml).
#
# The replica container joins the primary's network namespace, so it reaches the primary on
# 127.0.0.1 (the postgres image allows local replication connections) and listens on 5433,
# which the workflow's service definition already publishes. Afterwards
# postgresql://postgres@127.0.0.1:5433/postgres is a read-only replica for TEST_REPLICA_URL.
set -euo pipefail

primary=${1:?usage: ci-replica.sh PRIMARY_CONTAINER_ID [IMAGE]}
image=${2:-postgres:17}

docker run --detach --name pg-replica --network "container:${primary}" --user postgres \
    --env PGDATA=/tmp/replica --entrypoint bash "$image" -c '
        set -euo pipefail
        pg_basebackup -h 127.0.0.1 -p 5432 -U postgres -D "$PGDATA" -R -X stream -c fast
        chmod 700 "$PGDATA"
        exec postgres -p 5433 -c hot_standby=on'

for _ in $(seq 60); do
    if docker exec pg-replica pg_isready -q -h 127.0.0.1 -p 5433 \
        && [[ "$(docker exec pg-replica psql -h 127.0.0.1 -p 5433 -U postgres -Atc \
            'SELECT pg_is_in_recovery()')" == t ]]; then
        echo "replica streaming on 127.0.0.1:5433"
        exit 0
    fi
    sleep 1
done
docker logs pg-replica >&2
echo "ERROR: the replica did not come up within 60s" >&2
exit 1
