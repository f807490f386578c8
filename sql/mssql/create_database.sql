-- Create the oktell database when it is missing (sent by docker-compose's one-shot `sqlcmd`
-- step against master, before `b24sync init-db`; b24sync itself never creates databases).
IF DB_ID(N'oktell') IS NULL
    CREATE DATABASE oktell;
