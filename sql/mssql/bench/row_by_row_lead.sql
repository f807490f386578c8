-- Benchmark baseline only (examples/mssql_load_bench.rs), never sent by the sink: the
-- original scenarios' way of loading, one round trip per lead: IF EXISTS ... UPDATE ... ELSE
-- INSERT. @P1 = sql_ID, @P2..@P34 = the LEAD_COLUMNS in order.
IF EXISTS (SELECT 1 FROM dbo.bitrix_leads WHERE sql_ID = @P1)
    UPDATE dbo.bitrix_leads SET
        sql_ADDRESS = @P2,
        sql_ADDRESS_2 = @P3,
        sql_ADDRESS_CITY = @P4,
        sql_ADDRESS_COUNTRY = @P5,
        sql_ADDRESS_COUNTRY_CODE = @P6,
        sql_ADDRESS_POSTAL_CODE = @P7,
        sql_ADDRESS_PROVINCE = @P8,
        sql_ADDRESS_REGION = @P9,
        sql_ASSIGNED_BY_ID = @P10,
        sql_BIRTHDATE = @P11,
        sql_COMMENTS = @P12,
        sql_COMPANY_ID = @P13,
        sql_COMPANY_TITLE = @P14,
        sql_CONTACT_ID = @P15,
        sql_CREATED_BY_ID = @P16,
        sql_CURRENCY_ID = @P17,
        sql_DATE_CLOSED = @P18,
        sql_DATE_CREATE = @P19,
        sql_DATE_MODIFY = @P20,
        sql_LAST_NAME = @P21,
        sql_MODIFY_BY_ID = @P22,
        sql_NAME = @P23,
        sql_OPENED = @P24,
        sql_OPPORTUNITY = @P25,
        sql_ORIGIN_ID = @P26,
        sql_ORIGINATOR_ID = @P27,
        sql_POST = @P28,
        sql_SECOND_NAME = @P29,
        sql_SOURCE_DESCRIPTION = @P30,
        sql_SOURCE_ID = @P31,
        sql_STATUS_DESCRIPTION = @P32,
        sql_STATUS_ID = @P33,
        sql_TITLE = @P34
    WHERE sql_ID = @P1;
ELSE
    INSERT INTO dbo.bitrix_leads (sql_ID, sql_ADDRESS, sql_ADDRESS_2, sql_ADDRESS_CITY, sql_ADDRESS_COUNTRY, sql_ADDRESS_COUNTRY_CODE, sql_ADDRESS_POSTAL_CODE, sql_ADDRESS_PROVINCE, sql_ADDRESS_REGION, sql_ASSIGNED_BY_ID, sql_BIRTHDATE, sql_COMMENTS, sql_COMPANY_ID, sql_COMPANY_TITLE, sql_CONTACT_ID, sql_CREATED_BY_ID, sql_CURRENCY_ID, sql_DATE_CLOSED, sql_DATE_CREATE, sql_DATE_MODIFY, sql_LAST_NAME, sql_MODIFY_BY_ID, sql_NAME, sql_OPENED, sql_OPPORTUNITY, sql_ORIGIN_ID, sql_ORIGINATOR_ID, sql_POST, sql_SECOND_NAME, sql_SOURCE_DESCRIPTION, sql_SOURCE_ID, sql_STATUS_DESCRIPTION, sql_STATUS_ID, sql_TITLE)
    VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P13, @P14, @P15, @P16, @P17, @P18, @P19, @P20, @P21, @P22, @P23, @P24, @P25, @P26, @P27, @P28, @P29, @P30, @P31, @P32, @P33, @P34);
