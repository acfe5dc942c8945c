-- The positions (attnum) of a table's key columns, in key order (PostgreSQL): what the
-- capture function reads the key by when a key column was renamed since it was installed.
-- Parameters (bound): :table the schema-qualified table name; :columns the key columns.
SELECT a.attnum
FROM unnest(CAST(:columns AS text[])) WITH ORDINALITY AS k(name, ord)
JOIN pg_catalog.pg_attribute a
    ON a.attrelid = CAST(:table AS regclass) AND a.attname = k.name AND NOT a.attisdropped
ORDER BY k.ord
