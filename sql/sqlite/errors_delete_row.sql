-- A full sync's clean-up: delete the error row ?1 (its lead ID is not a number, so it can
-- never be read again, and the complete read no longer returned such a lead).
DELETE FROM bitrix_import_lead_error WHERE Id = ?1;
