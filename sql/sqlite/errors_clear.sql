DELETE FROM bitrix_import_lead_error WHERE sql_date_error < ?1;
