-- tidegate capture trigger for deletes from one table (MySQL/MariaDB).
-- Parameters as in trigger_insert.sql, with {old_key} and {old_data} (of OLD): JSON_ARRAY(OLD.`k1`, ...).
CREATE OR REPLACE TRIGGER {trigger} AFTER DELETE ON {table} FOR EACH ROW
INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
VALUES ({table_id}, 'D', {old_key}, {now_us}, {old_data})
