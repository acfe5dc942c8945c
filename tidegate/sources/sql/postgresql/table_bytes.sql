-- table_bytes: the bytes each of the named tables takes, indexes and TOAST included.
-- Parameters: :names (expanding list of table names), :schema ('' for the current schema).
-- Returns: table_name, bytes.
SELECT c.relname AS table_name, pg_total_relation_size(c.oid) AS bytes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = coalesce(nullif(:schema, ''), current_schema())
  AND c.relkind = 'r'
  AND c.relname IN :names
