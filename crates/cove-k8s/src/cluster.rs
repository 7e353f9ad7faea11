//! Rendered objects on a cluster: server-side apply with prune, rollouts,
//! status, diff, rollback, delete (kube-rs).
