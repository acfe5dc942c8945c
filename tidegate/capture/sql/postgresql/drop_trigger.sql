-- Removes the capture trigger of one table (PostgreSQL).
-- Parameters: {trigger} trigger name; {table} schema-qualified table.
DROP TRIGGER IF EXISTS {trigger} ON {table}
