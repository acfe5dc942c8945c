-- Lists every tidegate capture trigger in the current database (MySQL/MariaDB).
SELECT TRIGGER_NAME AS trigger_name, EVENT_OBJECT_TABLE AS table_name
FROM information_schema.TRIGGERS
WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'tidegate\_%'
