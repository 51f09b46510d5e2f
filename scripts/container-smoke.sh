#!/usr/bin/env bash
# Build the pgmcp container image and prove it works against a real PostgreSQL:
#   1. `pgmcp check-config --connect` in the image (connects, checks the role, reads the schema);
#   2. the image's default command (`pgmcp serve --transport http --host 0.0.0.0`), its /healthz,
#      its HEALTHCHECK, and one MCP `tools/call` (execute_sql) through the SDK's client.
#
#   scripts/container-smoke.sh [--base IMAGE] [--wheels] [--keep-image | --image IMAGE]
#
#   --base IMAGE   build both stages FROM this image instead of python:3.12-slim (a local image
#                  when public registries are unreachable; any Debian-like image with python3,
#                  its venv module and useradd)
#   --wheels       build wheels of pgmcp and its dependencies on this machine first and install
#                  them in the image without a package index (when the build cannot reach one)
#   --keep-image   keep the image (tagged pgmcp:smoke) afterwards
#   --image IMAGE  test this existing image instead of building one
#
# Engine: podman, else docker (PGMCP_SMOKE_ENGINE=podman|docker to choose); when neither can
# run containers the script says so and exits 0 without testing anything. PostgreSQL: a
# throwaway cluster (initdb/pg_ctl, as for the test suite) on a free port of 127.0.0.1, reached
# from the containers through the host network. Extra engine options: PGMCP_SMOKE_ENGINE_ARGS
# (before the subcommand, e.g. "--runtime runc") and PGMCP_SMOKE_RUN_ARGS (for build and run,
# e.g. "--ulimit nofile=1024:1024"); with podman, runc is used when installed and the limits
# are lowered to values every host permits. Everything it starts is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE="" WHEELS=0 KEEP=0 GIVEN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE="${2:?--base needs an image}"; shift 2 ;;
    --wheels) WHEELS=1; shift ;;
    --keep-image) KEEP=1; shift ;;
    --image) GIVEN="${2:?--image needs an image}"; KEEP=1; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "container-smoke: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

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
PG_RUN=() PG_BIN="" PG_STARTED=0
# Untagged images that exist before the build; the build stage's image is removed at the end.
DANGLING_BEFORE="$(engine images -q -f dangling=true 2>/dev/null | sort -u || true)"
cleanup() {
  engine rm -f "$CONTAINER" >/dev/null 2>&1 || true
  [ "$KEEP" = 1 ] || engine rmi -f "$IMAGE" >/dev/null 2>&1 || true
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

# -- the image -------------------------------------------------------------------------------
if [ -z "$GIVEN" ]; then
build=(build "${BUILD_ARGS[@]}" "${RUN_ARGS[@]}" -t "$IMAGE")
[ -n "$BASE" ] && build+=(--build-arg "BASE=$BASE")
if [ "$WHEELS" = 1 ]; then
  say "building wheels of pgmcp and its dependencies on this machine"
  rm -rf .container-wheels
  python3 -m pip wheel --quiet --wheel-dir .container-wheels '.[fast]' > "$WORK/wheels.log" 2>&1 \
    || { tail -20 "$WORK/wheels.log" >&2; fail "pip wheel (python3 must have pip: run this script with a venv's bin first on PATH)"; }
  say "$(ls .container-wheels | wc -l) wheels"
  build+=(--build-arg WHEELS=.container-wheels)
fi
say "building $IMAGE${BASE:+ from $BASE}"
engine "${build[@]}" . > "$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; fail "image build"; }
fi
engine run --rm --no-healthcheck "${RUN_ARGS[@]}" "$IMAGE" --version

# -- a throwaway PostgreSQL ------------------------------------------------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
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
# podman schedules the periodic HEALTHCHECK with systemd timers; where systemd does not run it
# logs "unable to get systemd connection" (harmless), and the check is run on demand below.
engine "${run[@]}" -d --name "$CONTAINER" "$IMAGE" "${serve[@]}" >/dev/null
for _ in $(seq 60); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/healthz', timeout=2)" 2>/dev/null && break
  sleep 1
done
python3 - "$HTTP_PORT" <<'PY' || { engine logs "$CONTAINER" >&2; fail "/healthz is not 200"; }
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=5) as reply:
    health = json.load(reply)
print(f"/healthz {reply.status}: {json.dumps(health)}")
assert health["status"] == "ok" and health["databases"]["shop"]["up"], health
PY
if [ "$HTTP_PORT" = 8000 ]; then
  if [ "$ENGINE" = podman ]; then
    engine healthcheck run "$CONTAINER" || fail "the image's HEALTHCHECK failed"
    say "HEALTHCHECK: healthy"
  else
    for _ in $(seq 45); do
      state="$(engine inspect -f '{{.State.Health.Status}}' "$CONTAINER")"
      [ "$state" = healthy ] && break
      sleep 2
    done
    [ "$state" = healthy ] || fail "the image's HEALTHCHECK says $state"
    say "HEALTHCHECK: $state"
  fi
fi

say "tools/call execute_sql over streamable HTTP (the MCP SDK's client, in the image)"
engine run --rm -i --no-healthcheck "${RUN_ARGS[@]}" --network host --entrypoint python3 "$IMAGE" - "$HTTP_PORT" <<'PY' \
  || { engine logs "$CONTAINER" >&2; fail "tools/call"; }
import sys

import anyio
from mcp.client.client import Client


async def main() -> None:
    async with Client(f"http://127.0.0.1:{sys.argv[1]}/mcp") as client:
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
        print("tools:", ", ".join(names))
        ok = await client.call_tool("execute_sql", {"sql": "SELECT id, name FROM customers ORDER BY id"})
        assert not ok.is_error, ok
        print("execute_sql rows:", ok.structured_content["rows"])
        assert ok.structured_content["rows"] == [[1, "Ada"], [2, "Grace"]], ok.structured_content
        refused = await client.call_tool("execute_sql", {"sql": "SELECT email FROM customers"})
        text = refused.content[0].text
        assert refused.is_error and "PGM301" in text, refused
        print("execute_sql refused:", text.splitlines()[1].strip())


anyio.run(main)
PY
engine stop -t 10 "$CONTAINER" >/dev/null
say "container-smoke: ok"
