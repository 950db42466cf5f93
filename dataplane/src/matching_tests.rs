//! Table tests for matching and precedence.
