SELECT Id, sql_ID, sql_error, sql_date_error FROM bitrix_import_lead_error ORDER BY Id;
