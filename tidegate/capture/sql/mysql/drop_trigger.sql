-- Removes one tidegate capture trigger (MySQL/MariaDB). Parameters: {trigger}.
DROP TRIGGER IF EXISTS {trigger}
