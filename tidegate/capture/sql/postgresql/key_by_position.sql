-- A fragment of the capture functions (capture_function.sql, entity_function.sql): the key
-- of the row {row} (NEW or OLD) read by column position into {into}, for when a column
-- the function names was renamed or dropped since it was installed. A dropped key column
-- gives a null in the key; a table without key columns, [].
-- Parameters: {row}, {into}, and the function's {key_positions} and {table_oid}.
SELECT COALESCE(json_agg(to_json({row}) -> a.attname ORDER BY u.ord)::text, '[]') INTO {into}
FROM unnest({key_positions}::int2[]) WITH ORDINALITY AS u(position, ord)
LEFT JOIN pg_catalog.pg_attribute a
    ON a.attrelid = {table_oid} AND a.attnum = u.position AND NOT a.attisdropped
