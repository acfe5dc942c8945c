-- tidegate capture trigger for deletes from one table (SQLite).
-- Parameters as in trigger_insert.sql, with {old_key} and {old_data} (of OLD): json_array(OLD."k1", ...).
CREATE TRIGGER {trigger} AFTER DELETE ON {table} FOR EACH ROW
BEGIN
    INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
    VALUES ({table_id}, 'D', {old_key}, {now_us}, {old_data});
END
