-- The tables of a schema that tidegate can export (PostgreSQL): ordinary and partitioned
-- tables, but no partition: a partitioned table is exported once, under its own name,
-- with the rows of every partition it has (attached later ones included), and capture
-- on it covers them all.
-- Parameters (bound): :schema the schema name.
SELECT c.relname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
