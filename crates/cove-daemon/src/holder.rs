//! Who listens on an address the gateway cannot bind: the listening
//! socket in `/proc/net/tcp{,6}`, the process that holds it (among those
//! this user may look into), and, when that is a cove daemon, the project
//! whose state directory it keeps ([`crate::about`]: name, environment,
//! directory). So "the address is in use" says by what.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// In words, what listens on `addr` (on its port, at its address or at
/// every address), if it can be told.
pub fn describe(addr: SocketAddr) -> Option<String> {
    let inode = listening_inode(addr)?;
    let pid = owner(inode)?;
    if pid == std::process::id() {
        return Some("another project of this cove daemon".into());
    }
    let cmdline = fs_err::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let state = args
        .windows(3)
        .find(|w| w[0].ends_with("cove") && w[1] == "__daemon")
        .and_then(|_| {
            let i = args.iter().position(|a| a == "--state-dir")?;
            args.get(i + 1).cloned()
        });
    if let Some(state) = state
        && let Some(about) = crate::about::About::read(Path::new(&state))
    {
        return Some(format!("the gateway of cove project {about} (pid {pid})"));
    }
    let comm = fs_err::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Some(format!("{} (pid {pid})", comm.trim()))
}

/// The inode of the socket listening on `addr`'s port at its address (or
/// at every address).
fn listening_inode(addr: SocketAddr) -> Option<u64> {
    let files = ["/proc/net/tcp", "/proc/net/tcp6"];
    for file in files {
        let Ok(text) = fs_err::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let Some((ip, port)) = parse(f[1]) else {
                continue;
            };
            if port == addr.port() && (ip == addr.ip() || ip.is_unspecified()) {
                return f[9].parse().ok();
            }
        }
    }
    None
}

/// `0100007F:0BB8` (IPv4) or 32 hex digits (IPv6), as the kernel writes
/// them: each 32-bit word in host order.
fn parse(field: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// The process with a descriptor on socket `inode` (of those this user
/// may look into).
fn owner(inode: u64) -> Option<u32> {
    let wanted = format!("socket:[{inode}]");
    for entry in fs_err::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs_err::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs_err::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_addresses_are_read() {
        assert_eq!(
            parse("0100007F:0BB8"),
            Some(("127.0.0.1".parse().unwrap(), 3000))
        );
        assert_eq!(
            parse("00000000000000000000000001000000:1F90"),
            Some(("::1".parse().unwrap(), 8080))
        );
    }

    #[test]
    fn a_listener_of_this_process_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        assert_eq!(
            describe(at).as_deref(),
            Some("another project of this cove daemon")
        );
    }
}
