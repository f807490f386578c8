//! The embedded sink: a SQLite file holding the six Oktell tables under the same names.
