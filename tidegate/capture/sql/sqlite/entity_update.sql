-- tidegate entity capture for updates of one table of an entity (SQLite).
-- Parameters as in entity_insert.sql, plus {old_key}: the root's key from OLD. When the
-- update moves the row to another root, both roots are queued.
CREATE TRIGGER {trigger} AFTER UPDATE ON {table} FOR EACH ROW
BEGIN
    INSERT INTO {queue} (entity_id, pk, captured_us)
    SELECT {entity_id}, {old_key}, {now_us} WHERE {old_key} IS NOT {new_key};
    INSERT INTO {queue} (entity_id, pk, captured_us) VALUES ({entity_id}, {new_key}, {now_us});
END
