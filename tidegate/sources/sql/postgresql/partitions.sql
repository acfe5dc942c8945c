-- The partitions of a table, at every level, by name (PostgreSQL); none for a table that
-- is not partitioned. Attaching or detaching one moves rows in or out of the table
-- without a row trigger: schema drift exports the table whole when they change.
-- Parameters (bound): :table the schema-qualified table name.
SELECT CAST(relid AS regclass)::text
FROM pg_partition_tree(CAST(:table AS regclass))
WHERE relid <> CAST(:table AS regclass)
ORDER BY 1
