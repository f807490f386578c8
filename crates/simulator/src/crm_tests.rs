//! Contacts and companies over real HTTP.
