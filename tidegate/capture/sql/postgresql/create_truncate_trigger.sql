-- Installs the TRUNCATE trigger of one table (PostgreSQL): after a TRUNCATE, call the
-- table's capture function once (it records the change "T"). Row triggers do not see a
-- TRUNCATE. Run in the same transaction as create_trigger.sql.
-- Parameters: {trigger} trigger name; {table} schema-qualified table; {function} the
-- schema-qualified capture function.
CREATE TRIGGER {trigger} AFTER TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION {function}()
