-- tidegate entity capture for deletes from one table of an entity (MySQL/MariaDB).
-- Parameters as in entity_insert.sql, with {old_key}: the root's key from OLD.
CREATE OR REPLACE TRIGGER {trigger} AFTER DELETE ON {table} FOR EACH ROW
INSERT INTO {queue} (entity_id, pk, captured_us) VALUES ({entity_id}, {old_key}, {now_us})
