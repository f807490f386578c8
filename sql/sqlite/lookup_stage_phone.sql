INSERT INTO temp.stage_phones (owner_id, value_id, value, e164, extension, digits_rev, normalisable, reason)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8);
