SELECT value FROM b24sync_state WHERE name = ?1;
