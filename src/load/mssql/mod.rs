//! The SQL Server sink (the production target): the Oktell tables in an existing database.
