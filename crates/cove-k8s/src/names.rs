//! Names the API server accepts.
//!
//! Compose names allow `_`, `.` and capitals (`front_end`, `MyService`);
//! Kubernetes object names are DNS-1123 labels (Services: lowercase
//! alphanumerics and `-`, at most 63, starting with a letter) or
//! subdomains. [`dns_label`] maps one to the other the same way every time,
//! so a Service, the Deployment, the environment variables that name it
//! and the init containers that wait for it all agree.

/// `name` as a DNS-1123 label (RFC 1035 form: starts with a letter, as a
/// Service name must): lowercase, every other character `-`, runs of `-`
/// folded, trimmed, at most 63 characters. When that changes the name, or
/// it had to be cut, a short hash of the original is appended so that two
/// different names never map to one.
pub fn dns_label(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_string();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "s-");
    }
    let exact = out == name;
    if exact && out.len() <= 63 {
        return out;
    }
    let hash = format!("{:08x}", fnv32(name));
    // Room for "-" and the hash: 63 - 9.
    out.truncate(54);
    let out = out.trim_end_matches('-');
    format!("{out}-{}", &hash[..8])
}

fn fnv32(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_stay() {
        assert_eq!(dns_label("web"), "web");
        assert_eq!(dns_label("redis-node-0"), "redis-node-0");
    }

    #[test]
    fn invalid_names_become_valid_and_distinct() {
        let a = dns_label("front_end");
        let b = dns_label("front-end");
        assert!(a.starts_with("front-end-"), "{a}");
        assert_ne!(a, b);
        let m = dns_label("MyService");
        assert!(m.starts_with("myservice-"), "{m}");
        assert!(dns_label("1db").starts_with("s-1db-"));
        let long = "x".repeat(100);
        assert!(dns_label(&long).len() <= 63);
        for n in ["front_end", "MyService", "1db", &long, "a.b", "_x_"] {
            let l = dns_label(n);
            assert!(
                l.len() <= 63 && l.starts_with(|c: char| c.is_ascii_lowercase()),
                "{l}"
            );
            assert!(
                l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{l}"
            );
            assert!(!l.ends_with('-'), "{l}");
        }
    }
}
