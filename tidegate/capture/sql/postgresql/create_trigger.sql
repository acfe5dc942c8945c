-- Installs the capture trigger of one table (PostgreSQL): after every row change, call the
-- table's capture function. Run in the same transaction as drop_trigger.sql, so that no
-- write goes uncaptured while the trigger is replaced.
-- Parameters: {trigger} trigger name; {table} schema-qualified table; {function} the
-- schema-qualified capture function.
CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION {function}()
