//! Signal names as Compose writes them (`SIGTERM`, `TERM`, `15`).

use rustix::process::Signal;

/// Parses a `stop_signal` value.
pub fn parse(name: &str) -> Option<Signal> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    Some(match n {
        "TERM" | "15" => Signal::TERM,
        "INT" | "2" => Signal::INT,
        "QUIT" | "3" => Signal::QUIT,
        "HUP" | "1" => Signal::HUP,
        "KILL" | "9" => Signal::KILL,
        "USR1" | "10" => Signal::USR1,
        "USR2" | "12" => Signal::USR2,
        "WINCH" | "28" => Signal::WINCH,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse("SIGTERM"), Some(Signal::TERM));
        assert_eq!(parse("quit"), Some(Signal::QUIT));
        assert_eq!(parse("9"), Some(Signal::KILL));
        assert_eq!(parse("SIGNOPE"), None);
    }
}
