-- tidegate entity capture for inserts into one table of an entity (MySQL/MariaDB).
--
-- Parameters, filled in by tidegate; every identifier is quoted by SQLAlchemy:
--   {trigger}    trigger name, tidegate_ent_<entity_id>_<n>_i
--   {table}      the root table or a child table of the entity
--   {queue}      tidegate_entity_pending
--   {entity_id}  the entity's id in tidegate_entity
--   {new_key}    JSON_ARRAY(NEW.`k1`, ...): the ROOT's key, from this table's columns
--   {now_us}     microseconds since 1970 UTC
--
-- Tables directly manipulated: insert into tidegate_entity_pending, one row per change.
-- A change to a child row queues its root: the whole entity is exported again.
CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT ON {table} FOR EACH ROW
INSERT INTO {queue} (entity_id, pk, captured_us) VALUES ({entity_id}, {new_key}, {now_us})
