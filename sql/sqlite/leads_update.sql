-- Leads already present whose values changed; an unchanged row is not touched.
-- The unary + keeps the planner from scanning every lead and probing the (small) staging
-- table by its key; it walks the staged rows and looks each lead up by the index instead.
UPDATE bitrix_leads AS l SET
    sql_ADDRESS = s.sql_ADDRESS,
    sql_ADDRESS_2 = s.sql_ADDRESS_2,
    sql_ADDRESS_CITY = s.sql_ADDRESS_CITY,
    sql_ADDRESS_COUNTRY = s.sql_ADDRESS_COUNTRY,
    sql_ADDRESS_COUNTRY_CODE = s.sql_ADDRESS_COUNTRY_CODE,
    sql_ADDRESS_POSTAL_CODE = s.sql_ADDRESS_POSTAL_CODE,
    sql_ADDRESS_PROVINCE = s.sql_ADDRESS_PROVINCE,
    sql_ADDRESS_REGION = s.sql_ADDRESS_REGION,
    sql_ASSIGNED_BY_ID = s.sql_ASSIGNED_BY_ID,
    sql_BIRTHDATE = s.sql_BIRTHDATE,
    sql_COMMENTS = s.sql_COMMENTS,
    sql_COMPANY_ID = s.sql_COMPANY_ID,
    sql_COMPANY_TITLE = s.sql_COMPANY_TITLE,
    sql_CONTACT_ID = s.sql_CONTACT_ID,
    sql_CREATED_BY_ID = s.sql_CREATED_BY_ID,
    sql_CURRENCY_ID = s.sql_CURRENCY_ID,
    sql_DATE_CLOSED = s.sql_DATE_CLOSED,
    sql_DATE_CREATE = s.sql_DATE_CREATE,
    sql_DATE_MODIFY = s.sql_DATE_MODIFY,
    sql_LAST_NAME = s.sql_LAST_NAME,
    sql_MODIFY_BY_ID = s.sql_MODIFY_BY_ID,
    sql_NAME = s.sql_NAME,
    sql_OPENED = s.sql_OPENED,
    sql_OPPORTUNITY = s.sql_OPPORTUNITY,
    sql_ORIGIN_ID = s.sql_ORIGIN_ID,
    sql_ORIGINATOR_ID = s.sql_ORIGINATOR_ID,
    sql_POST = s.sql_POST,
    sql_SECOND_NAME = s.sql_SECOND_NAME,
    sql_SOURCE_DESCRIPTION = s.sql_SOURCE_DESCRIPTION,
    sql_SOURCE_ID = s.sql_SOURCE_ID,
    sql_STATUS_DESCRIPTION = s.sql_STATUS_DESCRIPTION,
    sql_STATUS_ID = s.sql_STATUS_ID,
    sql_TITLE = s.sql_TITLE
FROM temp.stage_leads AS s
WHERE l.sql_ID = +s.sql_ID
  AND (
       l.sql_ADDRESS IS NOT s.sql_ADDRESS
    OR l.sql_ADDRESS_2 IS NOT s.sql_ADDRESS_2
    OR l.sql_ADDRESS_CITY IS NOT s.sql_ADDRESS_CITY
    OR l.sql_ADDRESS_COUNTRY IS NOT s.sql_ADDRESS_COUNTRY
    OR l.sql_ADDRESS_COUNTRY_CODE IS NOT s.sql_ADDRESS_COUNTRY_CODE
    OR l.sql_ADDRESS_POSTAL_CODE IS NOT s.sql_ADDRESS_POSTAL_CODE
    OR l.sql_ADDRESS_PROVINCE IS NOT s.sql_ADDRESS_PROVINCE
    OR l.sql_ADDRESS_REGION IS NOT s.sql_ADDRESS_REGION
    OR l.sql_ASSIGNED_BY_ID IS NOT s.sql_ASSIGNED_BY_ID
    OR l.sql_BIRTHDATE IS NOT s.sql_BIRTHDATE
    OR l.sql_COMMENTS IS NOT s.sql_COMMENTS
    OR l.sql_COMPANY_ID IS NOT s.sql_COMPANY_ID
    OR l.sql_COMPANY_TITLE IS NOT s.sql_COMPANY_TITLE
    OR l.sql_CONTACT_ID IS NOT s.sql_CONTACT_ID
    OR l.sql_CREATED_BY_ID IS NOT s.sql_CREATED_BY_ID
    OR l.sql_CURRENCY_ID IS NOT s.sql_CURRENCY_ID
    OR l.sql_DATE_CLOSED IS NOT s.sql_DATE_CLOSED
    OR l.sql_DATE_CREATE IS NOT s.sql_DATE_CREATE
    OR l.sql_DATE_MODIFY IS NOT s.sql_DATE_MODIFY
    OR l.sql_LAST_NAME IS NOT s.sql_LAST_NAME
    OR l.sql_MODIFY_BY_ID IS NOT s.sql_MODIFY_BY_ID
    OR l.sql_NAME IS NOT s.sql_NAME
    OR l.sql_OPENED IS NOT s.sql_OPENED
    OR l.sql_OPPORTUNITY IS NOT s.sql_OPPORTUNITY
    OR l.sql_ORIGIN_ID IS NOT s.sql_ORIGIN_ID
    OR l.sql_ORIGINATOR_ID IS NOT s.sql_ORIGINATOR_ID
    OR l.sql_POST IS NOT s.sql_POST
    OR l.sql_SECOND_NAME IS NOT s.sql_SECOND_NAME
    OR l.sql_SOURCE_DESCRIPTION IS NOT s.sql_SOURCE_DESCRIPTION
    OR l.sql_SOURCE_ID IS NOT s.sql_SOURCE_ID
    OR l.sql_STATUS_DESCRIPTION IS NOT s.sql_STATUS_DESCRIPTION
    OR l.sql_STATUS_ID IS NOT s.sql_STATUS_ID
    OR l.sql_TITLE IS NOT s.sql_TITLE
  );
