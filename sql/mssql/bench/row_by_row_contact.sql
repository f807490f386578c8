-- Benchmark baseline only (examples/mssql_load_bench.rs): one round trip per contact value,
-- as the original scenarios did. @P1 = lead, @P2 = contact ID, @P3..@P5 = type, value, kind.
IF EXISTS (SELECT 1 FROM dbo.bitrix_lead_contacts WHERE sql_LEAD_ID = @P1 AND sql_CONTACT_ID = @P2)
    UPDATE dbo.bitrix_lead_contacts SET sql_VALUE_TYPE = @P3, sql_VALUE = @P4, sql_TYPE_ID = @P5
    WHERE sql_LEAD_ID = @P1 AND sql_CONTACT_ID = @P2;
ELSE
    INSERT INTO dbo.bitrix_lead_contacts (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID)
    VALUES (@P1, @P2, @P3, @P4, @P5);
