-- table_bytes: the bytes each of the named tables takes: the pages of its B-tree and of
-- its indexes, counted by the dbstat virtual table (one aggregate row per B-tree).
-- Parameters: :names (expanding list of table names).
-- Returns: table_name, bytes.
SELECT s.tbl_name AS table_name, sum(d.pgsize) AS bytes
FROM sqlite_schema AS s
JOIN dbstat AS d ON d.name = s.name AND d.aggregate = 1
WHERE s.tbl_name IN :names
  AND s.type IN ('table', 'index')
GROUP BY s.tbl_name
