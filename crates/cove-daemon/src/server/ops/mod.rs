//! The API's calls, one file per command (the table is in
//! [`crate::api`]'s doc), and what several share: [`checks`] (a running
//! app, known services) and [`converge`] (act on a desired state, wait
//! for the outcomes).

pub(super) mod act;
pub(super) mod checks;
pub(super) mod control;
pub(super) mod converge;
pub(super) mod deploy;
pub(super) mod down;
pub(super) mod events;
pub(super) mod history;
pub(super) mod logs;
pub(super) mod ps;
pub(super) mod rollback;
pub(super) mod routes;
pub(super) mod scale;
pub(super) mod status;
pub(super) mod up;
