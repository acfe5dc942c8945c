-- tidegate entity capture for updates of one table of an entity (MySQL/MariaDB).
-- Parameters as in entity_insert.sql, plus {old_key}: the root's key from OLD. When the
-- update moves the row to another root, both roots are queued.
CREATE OR REPLACE TRIGGER {trigger} AFTER UPDATE ON {table} FOR EACH ROW
BEGIN
    IF {old_key} <> {new_key} THEN
        INSERT INTO {queue} (entity_id, pk, captured_us)
        VALUES ({entity_id}, {old_key}, {now_us});
    END IF;
    INSERT INTO {queue} (entity_id, pk, captured_us) VALUES ({entity_id}, {new_key}, {now_us});
END
