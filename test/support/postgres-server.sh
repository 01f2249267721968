#!/usr/bin/env bash
# A PostgreSQL server for the PostgreSQL store's tests, on this machine (run as root):
# installs PostgreSQL (apt) when no cluster tool is present, starts the first cluster when it
# is not running, and creates the login role the tests use (password auth over 127.0.0.1,
# CREATEDB: every test file creates its own database with a random name and drops it).
# Idempotent. Prints one line for the caller's shell:
#   export AGENTCA_TEST_PG_URL=postgresql://agentca_test:…@127.0.0.1:PORT/postgres
# Used by .ci/run; locally: eval "$(bash test/support/postgres-server.sh)".
set -euo pipefail

ROLE=agentca_test
PASSWORD=agentca-test-only

if ! command -v pg_ctlcluster >/dev/null || ! command -v pg_lsclusters >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  # Installing must not start the server through the init system (CI has none); we start it below.
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >/dev/null
fi

cluster=$(pg_lsclusters -h | head -n 1)
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  pg_createcluster "$version" main >&2
  cluster=$(pg_lsclusters -h | head -n 1)
fi
read -r version name port status _ <<<"$cluster"
if [ "$status" != "online" ]; then
  pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start >&2
fi

# Peer authentication as the postgres superuser, from a directory it can read.
(cd / && runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -q -X) >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
SQL

echo "export AGENTCA_TEST_PG_URL=postgresql://$ROLE:$PASSWORD@127.0.0.1:$port/postgres"
