//! Unit tests of the text handlers.
