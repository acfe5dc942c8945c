-- tidegate capture function for one table (PostgreSQL, plpgsql).
--
-- Parameters, filled in by tidegate; every identifier is quoted by SQLAlchemy:
--   {function}      schema-qualified function name, tidegate_cap_<table_id>
--   {pending}       schema-qualified tidegate_pending
--   {table_id}      the table's id in tidegate_capture
--   {new_key}       json_build_array(NEW."k1", ...): the row's key after the change
--   {old_key}       json_build_array(OLD."k1", ...): the row's key before the change
--   {key_positions} ARRAY[attnum, ...]: the key columns' positions in the table
--   {table_oid}     the table's oid (a partition's trigger reads its partitioned table's
--                   columns: the partition's positions may differ)
--   {new_key_by_position}, {old_key_by_position}: key_by_position.sql for NEW and OLD
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
-- recorded as a delete of the old key followed by an update of the new one. A TRUNCATE
-- (its statement trigger, create_truncate_trigger.sql) is one change "T" with the key [],
-- which makes the next table export write the table whole.
--
-- The application's writes never fail because of it: when a column it names was renamed
-- or dropped since capture was installed, or its type changed since this session ran the
-- function (PL/pgSQL keeps the column types it planned with: "type of parameter … does
-- not match that when preparing the plan"), the key is read by column position instead
-- (from the row as JSON: slower, until the next export re-installs capture, which every
-- session then compiles anew) and the data time is the capture time. A dropped key
-- column gives a null in the key.
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql AS {dollar}
DECLARE
    new_key text;
    old_key text;
    new_data bigint := {now_us};
    old_data bigint := {now_us};
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
        VALUES ({table_id}, 'T', '[]', {now_us}, {now_us});
        RETURN NULL;
    END IF;
    BEGIN
        IF TG_OP <> 'DELETE' THEN
            new_key := {new_key}::text;
            new_data := {new_data};
        END IF;
        IF TG_OP <> 'INSERT' THEN
            old_key := {old_key}::text;
            old_data := {old_data};
        END IF;
    EXCEPTION WHEN undefined_column OR datatype_mismatch THEN
        IF TG_OP <> 'DELETE' THEN
            {new_key_by_position};
        END IF;
        IF TG_OP <> 'INSERT' THEN
            {old_key_by_position};
        END IF;
    END;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
        VALUES ({table_id}, 'D', old_key, {now_us}, old_data);
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND old_key <> new_key THEN
        INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
        VALUES ({table_id}, 'D', old_key, {now_us}, old_data);
    END IF;
    INSERT INTO {pending} (table_id, op, pk, captured_us, data_us)
    VALUES ({table_id}, CASE TG_OP WHEN 'INSERT' THEN 'I' ELSE 'U' END, new_key,
            {now_us}, new_data);
    RETURN NULL;
END
{dollar}
