# pgmcp as a container image: `pgmcp serve` on streamable HTTP at :8000/mcp, as a non-root user.
#
#   docker build -t pgmcp .            (podman build works the same)
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/deploy:/etc/pgmcp:ro" -e SHOP_DB_PASSWORD pgmcp
#
# The config is read from /etc/pgmcp/pgmcp.yaml (PGMCP_CONFIG); mount the folder holding it and
# its policies there. The entrypoint is `pgmcp`, so `docker run ... pgmcp check-config --connect`
# runs another subcommand. docs/container.md has the details.
#
# Build arguments:
#   BASE    the base image of both stages (a Debian-based image with python3 and its venv module)
#   WHEELS  a folder of the build context holding wheels of pgmcp and all its dependencies, to
#           install without reaching a package index (scripts/container-smoke.sh --wheels)
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
ARG WHEELS=
WORKDIR /src
COPY . .
RUN python3 -m venv /opt/pgmcp \
 && if [ -n "$WHEELS" ]; then \
      /opt/pgmcp/bin/pip install --no-cache-dir --no-index --find-links "$WHEELS" 'pgmcp[fast]'; \
    else \
      /opt/pgmcp/bin/pip install --no-cache-dir '.[fast]'; \
    fi \
 && /opt/pgmcp/bin/pgmcp --version

FROM ${BASE}
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/pgmcp pgmcp \
 && mkdir -p /etc/pgmcp /var/lib/pgmcp \
 && chown pgmcp:pgmcp /var/lib/pgmcp
COPY --from=build /opt/pgmcp /opt/pgmcp
ENV PATH=/opt/pgmcp/bin:$PATH \
    PGMCP_CONFIG=/etc/pgmcp/pgmcp.yaml \
    PYTHONUNBUFFERED=1
USER pgmcp
WORKDIR /var/lib/pgmcp
EXPOSE 8000
# 200 when every database is up; 503 while starting or when one is down (docs/operations.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["pgmcp"]
CMD ["serve", "--transport", "http", "--host", "0.0.0.0"]
