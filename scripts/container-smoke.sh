#!/usr/bin/env bash
# Build the pgmcp container image and prove it works against a real PostgreSQL:
#   1. `pgmcp check-config --connect` in the image (connects, checks the role, reads the schema),
#      then `pgmcp policy grants` from the image applied, and `check-config --connect --strict`;
#   2. the image's default command (`pgmcp serve --transport http --host 0.0.0.0`), its /healthz,
#      its HEALTHCHECK, and one MCP `tools/call` (execute_sql) through the SDK's client.
# With --compose, the same checks run against `compose up` of the repository's compose.yaml
# (PostgreSQL and pgmcp on a compose network), which is then taken down with its volume.
#
#   scripts/container-smoke.sh [--compose] [--base IMAGE] [--wheels] [--keep-image | --image IMAGE]
#                              [--postgres-image IMAGE]
#
#   --compose      test compose.yaml instead of the image alone (needs a compose provider:
#                  `docker compose`, `podman compose`, podman-compose or docker-compose; or
#                  PGMCP_SMOKE_COMPOSE="command ..."); without one it says so and exits 0
#   --base IMAGE   build both stages FROM this image instead of python:3.12-slim (a local image
#                  when public registries are unreachable; any Debian-like image with python3,
#                  its venv module and useradd); with --compose, also the PostgreSQL image
#                  (scripts/postgres-image: Debian's postgresql-15, so its apt must reach a mirror)
#   --wheels       build wheels of pgmcp and its dependencies on this machine first and install
#                  them in the image without a package index (when the build cannot reach one)
#   --keep-image   keep the image (tagged pgmcp:smoke) afterwards
#   --image IMAGE  test this existing image instead of building one (not with --compose)
#   --postgres-image IMAGE  with --compose: this PostgreSQL image (default postgres:16, or the
#                  one built from --base)
#
# Engine: podman, else docker (PGMCP_SMOKE_ENGINE=podman|docker to choose); when neither can
# run containers the script says so and exits 0 without testing anything. PostgreSQL: a
# throwaway cluster (initdb/pg_ctl, as for the test suite) on a free port of 127.0.0.1, reached
# from the containers through the host network. Extra engine options: PGMCP_SMOKE_ENGINE_ARGS
# (before the subcommand, e.g. "--runtime runc") and PGMCP_SMOKE_RUN_ARGS (for build and run,
# e.g. "--ulimit nofile=1024:1024"); with podman, runc is used when installed and the limits
# are lowered to values every host permits (with --compose through a containers.conf of its
# own, CONTAINERS_CONF, since the provider runs podman). Everything it starts is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE="" WHEELS=0 KEEP=0 GIVEN="" COMPOSE=0 PG_IMAGE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --compose) COMPOSE=1; shift ;;
    --base) BASE="${2:?--base needs an image}"; shift 2 ;;
    --wheels) WHEELS=1; shift ;;
    --keep-image) KEEP=1; shift ;;
    --image) GIVEN="${2:?--image needs an image}"; KEEP=1; shift 2 ;;
    --postgres-image) PG_IMAGE="${2:?--postgres-image needs an image}"; shift 2 ;;
    -h|--help) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "container-smoke: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$COMPOSE" = 1 ] && [ -n "$GIVEN" ]; then
  echo "container-smoke: --image is not for --compose (compose.yaml builds the image)" >&2; exit 2
fi

say() { printf '== %s\n' "$*"; }
fail() { printf 'container-smoke: FAILED: %s\n' "$*" >&2; exit 1; }

# -- the engine ------------------------------------------------------------------------------
ENGINE="${PGMCP_SMOKE_ENGINE:-}"
if [ -z "$ENGINE" ]; then
  for candidate in podman docker; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then
      ENGINE="$candidate"; break
    fi
  done
fi
if [ -z "$ENGINE" ]; then
  echo "container-smoke: SKIPPED: neither podman nor docker can run containers here" \
       "(not installed, or no daemon); install one (Debian: apt-get install podman runc) to run it"
  exit 0
fi
read -r -a ENGINE_ARGS <<< "${PGMCP_SMOKE_ENGINE_ARGS:-}"
read -r -a RUN_ARGS <<< "${PGMCP_SMOKE_RUN_ARGS:-}"
BUILD_ARGS=()
if [ "$ENGINE" = podman ]; then
  if [ -z "${PGMCP_SMOKE_ENGINE_ARGS:-}" ] && command -v runc >/dev/null 2>&1; then
    ENGINE_ARGS=(--runtime runc)
  fi
  if [ -z "${PGMCP_SMOKE_RUN_ARGS:-}" ]; then
    RUN_ARGS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
  fi
  BUILD_ARGS=(--format docker)  # the OCI format has no HEALTHCHECK
fi
engine() { "$ENGINE" "${ENGINE_ARGS[@]}" "$@"; }
say "engine: $ENGINE $(engine --version | head -1) ${ENGINE_ARGS[*]} ${RUN_ARGS[*]}"

# -- cleanup of everything started here ------------------------------------------------------
IMAGE="${GIVEN:-pgmcp:smoke}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pgmcp-smoke.XXXXXX")"
CONTAINER="pgmcp-smoke-$$"
PROJECT="pgmcp-smoke-$$"  # --compose: the compose project
COMPOSE_CMD=() COMPOSE_UP=0 PG_BUILT=""
PG_RUN=() PG_BIN="" PG_STARTED=0
# Untagged images that exist before the build; the build stage's image is removed at the end.
DANGLING_BEFORE="$(engine images -q -f dangling=true 2>/dev/null | sort -u || true)"
cleanup() {
  engine rm -f "$CONTAINER" >/dev/null 2>&1 || true
  if [ "$COMPOSE_UP" = 1 ]; then
    compose down -v > "$WORK/down.log" 2>&1 || { tail -20 "$WORK/down.log" >&2; echo "container-smoke: compose down failed" >&2; }
  fi
  [ "$KEEP" = 1 ] || engine rmi -f "$IMAGE" >/dev/null 2>&1 || true
  [ -z "$PG_BUILT" ] || [ "$KEEP" = 1 ] || engine rmi -f "$PG_BUILT" >/dev/null 2>&1 || true
  for id in $(engine images -q -f dangling=true 2>/dev/null | sort -u | comm -13 <(echo "$DANGLING_BEFORE") - || true); do
    engine rmi -f "$id" >/dev/null 2>&1 || true
  done
  if [ "$PG_STARTED" = 1 ]; then
    "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK" .container-wheels
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- what both modes share -------------------------------------------------------------------
build_wheels() {
  say "building wheels of pgmcp and its dependencies on this machine"
  rm -rf .container-wheels
  python3 -m pip wheel --quiet --wheel-dir .container-wheels '.[fast]' > "$WORK/wheels.log" 2>&1 \
    || { tail -20 "$WORK/wheels.log" >&2; fail "pip wheel (python3 must have pip: run this script with a venv's bin first on PATH)"; }
  say "$(ls .container-wheels | wc -l) wheels"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# /healthz on 127.0.0.1:$1 answers 200 with the database shop up (waits up to 90 s for it).
check_healthz() {
  for _ in $(seq 90); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$1/healthz', timeout=2)" 2>/dev/null && break
    sleep 1
  done
  python3 - "$1" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=5) as reply:
    health = json.load(reply)
print(f"/healthz {reply.status}: {json.dumps(health)}")
assert health["status"] == "ok" and health["databases"]["shop"]["up"], health
PY
}

# The image's HEALTHCHECK passes in container $1.
check_healthcheck() {
  if [ "$ENGINE" = podman ]; then
    # podman schedules the periodic check with systemd timers; where systemd does not run it
    # logs "unable to get systemd connection" (harmless), and the check is run on demand here.
    engine healthcheck run "$1" || fail "the image's HEALTHCHECK failed"
    say "HEALTHCHECK: healthy"
  else
    local state=""
    for _ in $(seq 45); do
      state="$(engine inspect -f '{{.State.Health.Status}}' "$1")"
      [ "$state" = healthy ] && break
      sleep 2
    done
    [ "$state" = healthy ] || fail "the image's HEALTHCHECK says $state"
    say "HEALTHCHECK: $state"
  fi
}

# One MCP session over streamable HTTP at 127.0.0.1:$1 (the SDK's client, run from the image on
# the host network): the tools, execute_sql with its rows, and PGM301 for the hidden column.
check_tools_call() {
  say "tools/call execute_sql over streamable HTTP (the MCP SDK's client, in the image)"
  engine run --rm -i --no-healthcheck "${RUN_ARGS[@]}" --network host --entrypoint python3 "$IMAGE" - "$1" "$2" <<'PY'
import json
import sys

import anyio
from mcp.client.client import Client


async def main() -> None:
    expected = json.loads(sys.argv[2])
    async with Client(f"http://127.0.0.1:{sys.argv[1]}/mcp") as client:
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
        print("tools:", ", ".join(names))
        ok = await client.call_tool("execute_sql", {"sql": "SELECT id, name FROM customers ORDER BY id"})
        assert not ok.is_error, ok
        print("execute_sql rows:", ok.structured_content["rows"])
        assert ok.structured_content["rows"] == expected, ok.structured_content
        refused = await client.call_tool("execute_sql", {"sql": "SELECT email FROM customers"})
        text = refused.content[0].text
        assert refused.is_error and "PGM301" in text, refused
        print("execute_sql refused:", text.splitlines()[1].strip())


anyio.run(main)
PY
}

# -- the image -------------------------------------------------------------------------------
if [ "$COMPOSE" = 0 ] && [ -z "$GIVEN" ]; then
  build=(build "${BUILD_ARGS[@]}" "${RUN_ARGS[@]}" -t "$IMAGE")
  [ -n "$BASE" ] && build+=(--build-arg "BASE=$BASE")
  if [ "$WHEELS" = 1 ]; then
    build_wheels
    build+=(--build-arg WHEELS=.container-wheels)
  fi
  say "building $IMAGE${BASE:+ from $BASE}"
  engine "${build[@]}" . > "$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; fail "image build"; }
fi

# -- --compose: compose.yaml up, checked, down -----------------------------------------------
if [ "$COMPOSE" = 1 ]; then
  if [ -n "${PGMCP_SMOKE_COMPOSE:-}" ]; then
    read -r -a COMPOSE_CMD <<< "$PGMCP_SMOKE_COMPOSE"
  elif "$ENGINE" compose version >/dev/null 2>&1; then
    COMPOSE_CMD=("$ENGINE" compose)
  elif [ "$ENGINE" = podman ] && command -v podman-compose >/dev/null 2>&1; then
    COMPOSE_CMD=(podman-compose)
  elif [ "$ENGINE" = docker ] && command -v docker-compose >/dev/null 2>&1; then
    COMPOSE_CMD=(docker-compose)
  else
    echo "container-smoke: SKIPPED: no compose provider for $ENGINE (docker compose, podman compose," \
         "podman-compose, docker-compose); e.g. python3 -m venv /var/tmp/compose-venv &&" \
         "/var/tmp/compose-venv/bin/pip install podman-compose, then PGMCP_SMOKE_COMPOSE=/var/tmp/compose-venv/bin/podman-compose"
    exit 0
  fi
  compose() { "${COMPOSE_CMD[@]}" -p "$PROJECT" -f compose.yaml "$@"; }
  if [ "$ENGINE" = podman ]; then
    # The provider runs podman itself: the runtime, the limits and the image format go through
    # a containers.conf and buildah's environment rather than command-line options.
    conf="$WORK/containers.conf"
    printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n' > "$conf"
    if command -v runc >/dev/null 2>&1; then printf '[engine]\nruntime = "runc"\n' >> "$conf"; fi
    export CONTAINERS_CONF="$conf" BUILDAH_FORMAT=docker
  fi
  if [ -z "$PG_IMAGE" ] && [ -n "$BASE" ]; then
    PG_BUILT="localhost/pgmcp-postgres:smoke-$$" PG_IMAGE="$PG_BUILT"
    say "building $PG_IMAGE from $BASE (scripts/postgres-image: Debian's postgresql-15)"
    engine build "${BUILD_ARGS[@]}" "${RUN_ARGS[@]}" --build-arg "BASE=$BASE" -t "$PG_IMAGE" scripts/postgres-image \
      > "$WORK/pg-build.log" 2>&1 || { tail -40 "$WORK/pg-build.log" >&2; fail "PostgreSQL image build"; }
  fi
  [ "$WHEELS" = 1 ] && build_wheels
  HTTP_PORT="$(free_port)"
  export SHOP_DB_PASSWORD="smoke-$$-password" PGMCP_PORT="$HTTP_PORT" PGMCP_IMAGE="$IMAGE" \
         PGMCP_POSTGRES_IMAGE="${PG_IMAGE:-postgres:16}" PGMCP_BASE="${BASE:-python:3.12-slim}"
  [ "$WHEELS" = 1 ] && export PGMCP_WHEELS=.container-wheels
  say "compose: ${COMPOSE_CMD[*]} up (project $PROJECT, postgres $PGMCP_POSTGRES_IMAGE, pgmcp on 127.0.0.1:$HTTP_PORT)"
  COMPOSE_UP=1
  compose up -d --build > "$WORK/up.log" 2>&1 || { tail -40 "$WORK/up.log" >&2; fail "compose up"; }
  pgmcp_container="$(engine ps -q --filter "label=com.docker.compose.project=$PROJECT" \
                                   --filter "label=com.docker.compose.service=pgmcp" | head -1)"
  [ -n "$pgmcp_container" ] || { engine ps -a >&2; fail "no running pgmcp container of project $PROJECT"; }
  check_healthz "$HTTP_PORT" || { compose logs > "$WORK/logs.txt" 2>&1; tail -40 "$WORK/logs.txt" >&2; fail "/healthz is not 200"; }
  say "check-config --connect in the pgmcp service"
  engine exec "$pgmcp_container" pgmcp check-config --connect | tee "$WORK/check.txt"
  grep -q '^check-config: ok' "$WORK/check.txt" || fail "check-config did not say ok"
  grep -q 'hidden columns: public.customers.email' "$WORK/check.txt" || fail "check-config: the policy's hidden column is missing"
  grep -q 'privilege audit: ok' "$WORK/check.txt" || fail "check-config: the privilege audit of compose/initdb's grants is not clean"
  check_healthcheck "$pgmcp_container"
  check_tools_call "$HTTP_PORT" '[[1, "Ada Lovelace"], [2, "Grace Hopper"], [3, "Emmy Noether"]]' \
    || { compose logs > "$WORK/logs.txt" 2>&1; tail -40 "$WORK/logs.txt" >&2; fail "tools/call"; }
  say "compose down -v"
  COMPOSE_UP=0
  compose down -v > "$WORK/down.log" 2>&1 || { tail -20 "$WORK/down.log" >&2; fail "compose down"; }
  [ -z "$(engine ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "compose down left containers"
  say "container-smoke --compose: ok"
  exit 0
fi
engine run --rm --no-healthcheck "${RUN_ARGS[@]}" "$IMAGE" --version

# -- a throwaway PostgreSQL ------------------------------------------------------------------
if [ -n "${PGMCP_PG_BINDIR:-}" ]; then PG_BIN="$PGMCP_PG_BINDIR"
elif command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then PG_BIN="$(pg_config --bindir)"
else PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
fi
[ -x "$PG_BIN/initdb" ] || fail "PostgreSQL's initdb was not found (install postgresql, or set PGMCP_PG_BINDIR)"
PSQL="$PG_BIN/psql"; [ -x "$PSQL" ] || PSQL="$(command -v psql)" || fail "psql was not found"
mkdir -p "$WORK/data" "$WORK/sock" "$WORK/config/policies"
chmod 755 "$WORK"
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$WORK/data" "$WORK/sock"
  PG_RUN=(runuser -u postgres --)
fi
PG_PORT="$(free_port)"
say "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
"${PG_RUN[@]}" "$PG_BIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
# The role pgmcp uses must give its password; the superuser (setup only) is trusted.
printf 'local all all trust\nhost all pgmcp_ro 127.0.0.1/32 scram-sha-256\nhost all postgres 127.0.0.1/32 trust\n' \
  | "${PG_RUN[@]}" tee "$WORK/data/pg_hba.conf" >/dev/null
"${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/data/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$WORK/sock -c fsync=off" \
  start >/dev/null
PG_STARTED=1
"$PSQL" -X -q -v ON_ERROR_STOP=1 "postgresql://postgres@127.0.0.1:$PG_PORT/postgres" <<'SQL'
CREATE DATABASE shop;
CREATE ROLE pgmcp_ro LOGIN PASSWORD 'smoke-password' NOSUPERUSER NOBYPASSRLS;
\c shop
CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
INSERT INTO public.customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', 'grace@example.com');
GRANT USAGE ON SCHEMA public TO pgmcp_ro;
GRANT SELECT ON public.customers TO pgmcp_ro;
SQL

# -- the config, mounted at /etc/pgmcp -------------------------------------------------------
cat > "$WORK/config/pgmcp.yaml" <<EOF
databases:
  shop:
    dsn: postgresql://pgmcp_ro@127.0.0.1:$PG_PORT/shop
    password: \${SHOP_DB_PASSWORD}
    policies: [policies/shop.yaml]
EOF
cat > "$WORK/config/policies/shop.yaml" <<'EOF'
name: smoke
extends: [baseline]
tables: {"public.*": allow}
columns: {deny: [public.customers.email]}
EOF
chmod -R a+rX "$WORK/config"
run=(run "${RUN_ARGS[@]}" --network host -e SHOP_DB_PASSWORD=smoke-password
     -v "$WORK/config:/etc/pgmcp:ro,z")

say "check-config --connect in the image"
engine "${run[@]}" --rm --no-healthcheck "$IMAGE" check-config --connect | tee "$WORK/check.txt"
grep -q '^check-config: ok' "$WORK/check.txt" || fail "check-config did not say ok"
grep -q 'hidden columns: public.customers.email' "$WORK/check.txt" || fail "check-config: the policy's hidden column is missing"
grep -q 'privilege audit: 2 finding(s)' "$WORK/check.txt" || fail "check-config: the audit should find the broad grant above"
say "policy grants in the image, applied as the superuser; then check-config --connect --strict"
engine "${run[@]}" --rm --no-healthcheck "$IMAGE" policy grants > "$WORK/grants.sql" || fail "policy grants"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -f "$WORK/grants.sql" "postgresql://postgres@127.0.0.1:$PG_PORT/shop" || fail "applying the grants"
engine "${run[@]}" --rm --no-healthcheck "$IMAGE" check-config --connect --strict > "$WORK/strict.txt" \
  || { cat "$WORK/strict.txt" >&2; fail "check-config --connect --strict after the grants"; }
grep '^  privilege audit: ok' "$WORK/strict.txt" || fail "the privilege audit is not clean after the grants"

# -- the default command: serve over HTTP ----------------------------------------------------
HTTP_PORT="${PGMCP_SMOKE_PORT:-8000}"
if [ "$HTTP_PORT" = 8000 ]; then
  python3 -c 'import socket; socket.create_server(("0.0.0.0", 8000)).close()' 2>/dev/null \
    || fail "port 8000 is taken on this machine (the image's default command listens there); set PGMCP_SMOKE_PORT to another port"
  serve=()
else
  serve=(serve --transport http --host 127.0.0.1 --port "$HTTP_PORT")  # the HEALTHCHECK asks :8000
fi
say "serve (${serve[*]:-the default command}) on port $HTTP_PORT"
engine "${run[@]}" -d --name "$CONTAINER" "$IMAGE" "${serve[@]}" >/dev/null
check_healthz "$HTTP_PORT" || { engine logs "$CONTAINER" >&2; fail "/healthz is not 200"; }
[ "$HTTP_PORT" != 8000 ] || check_healthcheck "$CONTAINER"
check_tools_call "$HTTP_PORT" '[[1, "Ada"], [2, "Grace"]]' || { engine logs "$CONTAINER" >&2; fail "tools/call"; }
engine stop -t 10 "$CONTAINER" >/dev/null
say "container-smoke: ok"
