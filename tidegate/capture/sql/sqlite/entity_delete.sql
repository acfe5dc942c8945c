-- tidegate entity capture for deletes from one table of an entity (SQLite).
-- Parameters as in entity_insert.sql, with {old_key}: the root's key from OLD.
CREATE TRIGGER {trigger} AFTER DELETE ON {table} FOR EACH ROW
BEGIN
    INSERT INTO {queue} (entity_id, pk, captured_us) VALUES ({entity_id}, {old_key}, {now_us});
END
