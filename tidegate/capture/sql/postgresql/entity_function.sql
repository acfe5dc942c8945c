-- tidegate entity capture function for one table of an entity (PostgreSQL, plpgsql).
--
-- Parameters, filled in by tidegate; every identifier is quoted by SQLAlchemy:
--   {function}   schema-qualified function name, tidegate_ent_<entity_id>_<n>
--   {queue}      schema-qualified tidegate_entity_pending
--   {entity_id}  the entity's id in tidegate_entity
--   {new_key}    json_build_array(NEW."k1", ...): the ROOT's key, from this table's columns
--   {old_key}    the same from OLD
--   {key_positions} ARRAY[attnum, ...]: the positions of those columns in this table
--   {table_oid}  this table's oid (see capture_function.sql)
--   {new_key_by_position}, {old_key_by_position}: key_by_position.sql for NEW and OLD
--   {now_us}     the transaction's start time in microseconds since 1970 UTC
--   {dollar}     a dollar-quote tag that appears nowhere in the body
--
-- Tables directly manipulated: insert into tidegate_entity_pending, one row per change.
-- A change to a child row queues its root; a change that moves a row to another root
-- queues both.
--
-- As capture_function.sql, it never fails the application's write: a column renamed or
-- dropped since it was installed, or retyped since the session ran it, is read by
-- position instead.
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql AS {dollar}
DECLARE
    new_key text;
    old_key text;
BEGIN
    BEGIN
        IF TG_OP <> 'DELETE' THEN
            new_key := {new_key}::text;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            old_key := {old_key}::text;
        END IF;
    EXCEPTION WHEN undefined_column OR datatype_mismatch THEN
        IF TG_OP <> 'DELETE' THEN
            {new_key_by_position};
        END IF;
        IF TG_OP <> 'INSERT' THEN
            {old_key_by_position};
        END IF;
    END;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO {queue} (entity_id, pk, captured_us)
        VALUES ({entity_id}, old_key, {now_us});
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND old_key <> new_key) THEN
        INSERT INTO {queue} (entity_id, pk, captured_us)
        VALUES ({entity_id}, new_key, {now_us});
    END IF;
    RETURN NULL;
END
{dollar}
