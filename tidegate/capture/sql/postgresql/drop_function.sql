-- Removes the capture function of one table (PostgreSQL), after its trigger is gone.
-- Parameters: {function} the schema-qualified capture function.
DROP FUNCTION IF EXISTS {function}()
