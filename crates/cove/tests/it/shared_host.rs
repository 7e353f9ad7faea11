//! Shared-host safety tests (issue 26): see attack.rs.
