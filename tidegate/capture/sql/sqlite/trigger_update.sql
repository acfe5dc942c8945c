-- tidegate capture trigger for updates of one table (SQLite).
-- Parameters as in trigger_insert.sql, plus {old_key} and {old_data} (of OLD): json_array(OLD."k1", ...).
-- An update that changes the key is recorded as a delete of the old key and an update of
-- the new one.
CREATE TRIGGER {trigger} AFTER UPDATE ON {table} FOR EACH ROW
BEGIN
    INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
    SELECT {table_id}, 'D', {old_key}, {now_us}, {old_data} WHERE {old_key} IS NOT {new_key};
    INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
    VALUES ({table_id}, 'U', {new_key}, {now_us}, {new_data});
END
