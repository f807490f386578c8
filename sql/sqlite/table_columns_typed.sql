-- A table's columns as declared: name, declared type, NOT NULL flag, primary-key position
-- (for `b24sync doctor`). No rows when the table does not exist.
SELECT name, type, "notnull", pk FROM pragma_table_info(?1);
