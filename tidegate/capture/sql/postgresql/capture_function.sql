-- tidegate capture function for one table (PostgreSQL, plpgsql).
--
-- Parameters, filled in by tidegate; every identifier is quoted by SQLAlchemy:
--   {function}      schema-qualified function name, tidegate_cap_<table_id>
--   {pending}       schema-qualified tidegate_pending
--   {table_id}      the table's id in tidegate_capture
--   {new_key}       json_build_array(NEW."k1", ...): the row's key after the change
--   {old_key}       json_build_array(OLD."k1", ...): the row's key before the change
--   {now_us}        the transaction's start time in microseconds since 1970 UTC
--   {new_data}      the change's data time: the [tables] time_columns value of NEW
--                   in microseconds since 1970 UTC, else {now_us}; {old_data}: of OLD
--   {dollar}        a dollar-quote tag that appears nowhere in the body
--
-- Returns: trigger (NULL; it runs AFTER the row change).
-- Tables directly manipulated: insert into tidegate_pending, one row per change.
--
-- It runs inside the writer's transaction and only appends: the change becomes visible to
-- a claim when, and only if, the writer commits. An update that changes the key is
-- recorded as a delete of the old key followed by an update of the new one.
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql AS {dollar}
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
        VALUES ({table_id}, 'D', {old_key}::text, {now_us}, {old_data});
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND {old_key}::text <> {new_key}::text THEN
        INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
        VALUES ({table_id}, 'D', {old_key}::text, {now_us}, {old_data});
    END IF;
    INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
    VALUES ({table_id}, CASE TG_OP WHEN 'INSERT' THEN 'I' ELSE 'U' END, {new_key}::text,
            {now_us}, {new_data});
    RETURN NULL;
END
{dollar}
