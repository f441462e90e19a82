//! Model files: fetch, convert, verify.
