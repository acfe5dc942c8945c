-- Lists every tidegate capture trigger in the schema, with its table (PostgreSQL), so that
-- uninstall removes triggers even of tables tidegate_capture no longer names.
-- Parameters (bound): :schema the schema name.
SELECT t.tgname AS trigger_name, c.relname AS table_name
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND t.tgname LIKE 'tidegate\_%' AND NOT t.tgisinternal
