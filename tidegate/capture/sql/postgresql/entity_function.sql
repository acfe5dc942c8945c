-- tidegate entity capture function for one table of an entity (PostgreSQL, plpgsql).
--
-- Parameters, filled in by tidegate; every identifier is quoted by SQLAlchemy:
--   {function}   schema-qualified function name, tidegate_ent_<entity_id>_<n>
--   {queue}      schema-qualified tidegate_entity_pending
--   {entity_id}  the entity's id in tidegate_entity
--   {new_key}    json_build_array(NEW."k1", ...): the ROOT's key, from this table's columns
--   {old_key}    the same from OLD
--   {now_us}     the transaction's start time in microseconds since 1970 UTC
--   {dollar}     a dollar-quote tag that appears nowhere in the body
--
-- Tables directly manipulated: insert into tidegate_entity_pending, one row per change.
-- A change to a child row queues its root; a change that moves a row to another root
-- queues both.
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql AS {dollar}
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {queue} (entity_id, pk, captured_us)
        VALUES ({entity_id}, {new_key}::text, {now_us});
        RETURN NULL;
    END IF;
    INSERT INTO {queue} (entity_id, pk, captured_us)
    VALUES ({entity_id}, {old_key}::text, {now_us});
    IF TG_OP = 'UPDATE' THEN
        IF {old_key}::text <> {new_key}::text THEN
            INSERT INTO {queue} (entity_id, pk, captured_us)
            VALUES ({entity_id}, {new_key}::text, {now_us});
        END IF;
    END IF;
    RETURN NULL;
END
{dollar}
