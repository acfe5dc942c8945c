-- table_rows: about how many rows each of the named tables holds, as InnoDB's statistics
-- estimate them (no scan).
-- Parameters: :names (expanding list of table names).
-- Returns: table_name, rows.
SELECT table_name AS table_name, table_rows AS `rows`
FROM information_schema.tables
WHERE table_schema = DATABASE()
  AND table_name IN :names
