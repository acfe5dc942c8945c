-- tidegate capture trigger for inserts into one table (MySQL/MariaDB).
--
-- Parameters, filled in by tidegate; every identifier is quoted by SQLAlchemy:
--   {trigger}   trigger name, tidegate_cap_<table_id>_i
--   {table}     the captured table        {pending}  tidegate_pending
--   {table_id}  the table's id in tidegate_capture
--   {new_key}   JSON_ARRAY(NEW.`k1`, ...) {now_us}   microseconds since 1970 UTC
--   {new_data}  the change's data time: the [tables] time_columns value of NEW in
--               microseconds since 1970 UTC, else {now_us}
--
-- Tables directly manipulated: insert into tidegate_pending, one row per change.
-- CREATE OR REPLACE swaps the trigger atomically, so re-running init never opens a gap in
-- which a write goes uncaptured (MySQL DDL cannot run inside a transaction).
CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT ON {table} FOR EACH ROW
INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
VALUES ({table_id}, 'I', {new_key}, {now_us}, {new_data})
