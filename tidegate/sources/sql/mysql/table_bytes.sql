-- table_bytes: the bytes each of the named tables takes, data and indexes, as InnoDB's
-- statistics estimate them (refreshed as rows change, so approximate between refreshes).
-- Parameters: :names (expanding list of table names).
-- Returns: table_name, bytes.
SELECT table_name AS table_name, data_length + index_length AS bytes
FROM information_schema.tables
WHERE table_schema = DATABASE()
  AND table_name IN :names
