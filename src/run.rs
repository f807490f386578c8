//! One sync run: extract → transform → load through bounded channels.
