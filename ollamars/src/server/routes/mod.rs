//! The HTTP handlers, one file per group of routes. Each parses its body into an
//! [`crate::api`] type, validates it, and hands it to the library or the shared
//! [`super::completion`] pipeline; errors become responses in [`super::error`].

pub(super) mod chat;
pub(super) mod embed;
pub(super) mod generate;
pub(super) mod models;
pub(super) mod openai;
pub(super) mod transfer;
