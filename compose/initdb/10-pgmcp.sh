#!/bin/sh
# Run once by the postgres image when its data volume is first created: the read-only role
# pgmcp connects as (password from SHOP_DB_PASSWORD) and a small sample table.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v pw="$SHOP_DB_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE pgmcp_ro LOGIN PASSWORD :'pw'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 10;
ALTER ROLE pgmcp_ro SET default_transaction_read_only = on;
ALTER ROLE pgmcp_ro SET statement_timeout = '10s';
GRANT CONNECT ON DATABASE :"db" TO pgmcp_ro;
GRANT USAGE ON SCHEMA public TO pgmcp_ro;

CREATE TABLE public.customers (
  id      integer PRIMARY KEY,
  name    text NOT NULL,
  country char(2) NOT NULL,
  email   text NOT NULL
);
COMMENT ON TABLE public.customers IS 'People who registered with the shop';
INSERT INTO public.customers VALUES
  (1, 'Ada Lovelace', 'GB', 'ada@example.com'),
  (2, 'Grace Hopper', 'US', 'grace@example.com'),
  (3, 'Emmy Noether', 'DE', 'emmy@example.com');

-- Exactly what policies/shop.yaml lets through, so that PostgreSQL enforces it too (the privilege
-- audit of `pgmcp check-config --connect` is clean): every column but email. For your own tables,
-- `pgmcp policy grants --config /etc/pgmcp/pgmcp.yaml` prints these grants from the policy.
GRANT SELECT (id, name, country) ON public.customers TO pgmcp_ro;
SQL
