//! FNV-1a (32 bits): the stable hash addresses (a project's first block,
//! a service's range) and secrets' directories are named by. A leaf.

/// FNV-1a of `bytes`.
pub(crate) fn fnv(bytes: impl Iterator<Item = u8>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}
