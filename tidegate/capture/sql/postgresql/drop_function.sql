-- Removes the capture function of one table (PostgreSQL), and with it any trigger still
-- calling it: after its table was renamed, the trigger is on a table of another name.
-- Only tidegate's own triggers call a tidegate function.
-- Parameters: {function} the schema-qualified capture function.
DROP FUNCTION IF EXISTS {function}() CASCADE
