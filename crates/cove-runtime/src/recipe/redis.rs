//! Redis: `redis-server` on the replica's address (a `redis-cli ...`
//! command, a cluster-init job say, runs as written).

/// The command of a replica (see [`super::Recipe::command`]).
pub(super) fn command(user: Vec<String>) -> Vec<String> {
    // `redis-cli ...` (a cluster-init job, say) runs as written.
    if user.first().is_some_and(|p| p == "redis-cli") {
        return user;
    }
    let args = match user.first().map(String::as_str) {
        Some("redis-server") => user[1..].to_vec(),
        _ => user,
    };
    let clustered = args.iter().any(|a| a == "--cluster-enabled");
    let mut argv = vec!["redis-server".to_string()];
    // A config file given first stays first.
    argv.extend(args);
    if clustered {
        // Cluster nodes must tell each other the replica's own address.
        argv.extend(["--cluster-announce-ip", "$HOST"].map(String::from));
    }
    argv.extend(
        [
            "--bind",
            "$HOST",
            "--port",
            "$PORT",
            "--dir",
            "$COVE_DATA",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
        ]
        .map(String::from),
    );
    argv
}
