-- tidegate capture trigger for updates of one table (MySQL/MariaDB).
-- Parameters as in trigger_insert.sql, plus {old_key} and {old_data} (of OLD): JSON_ARRAY(OLD.`k1`, ...).
-- An update that changes the key is recorded as a delete of the old key and an update of
-- the new one. The keys are compared as JSON text, which is byte-exact, so a change of
-- letter case only is a key change too.
CREATE OR REPLACE TRIGGER {trigger} AFTER UPDATE ON {table} FOR EACH ROW
BEGIN
    IF {old_key} <> {new_key} THEN
        INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
        VALUES ({table_id}, 'D', {old_key}, {now_us}, {old_data});
    END IF;
    INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
    VALUES ({table_id}, 'U', {new_key}, {now_us}, {new_data});
END
