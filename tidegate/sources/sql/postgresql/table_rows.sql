-- table_rows: about how many rows each of the named tables holds, as the planner's
-- statistics say (no scan); a table never analysed (-1) is left out. A partitioned
-- table's rows are its partitions'.
-- Parameters: :names (expanding list of table names), :schema ('' for the current schema).
-- Returns: table_name, rows.
SELECT c.relname AS table_name,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT sum(greatest(p.reltuples, 0))::bigint
                  FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                  WHERE i.inhparent = c.oid)
            ELSE c.reltuples::bigint END AS rows
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = coalesce(nullif(:schema, ''), current_schema())
  AND c.relkind IN ('r', 'p')
  AND c.relname IN :names
