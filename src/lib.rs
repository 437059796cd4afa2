//! raftkv: the embedded API.
