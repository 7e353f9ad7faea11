//! Preview keys: which preview of a baseline a request is for.
//!
//! A request's key is the value of its `X-Cove-Preview` field, else the
//! value of the `cove-preview` member of its `baggage` fields (W3C
//! Baggage: comma-separated `key=value;properties` members, whitespace
//! allowed around each part; values are compared as sent, not
//! percent-decoded). An empty value is no key. A route that sets a key
//! (an entry route of a preview, [`crate::table::Route::preview`])
//! replaces both on the forwarded request: `X-Cove-Preview: KEY`, and
//! `baggage` with the client's other members and `cove-preview=KEY`.

/// The field that carries the key (lower case, as HTTP/2 and the fast
/// path's comparisons want it).
pub const HEADER: &str = "x-cove-preview";
/// The W3C Baggage field.
pub const BAGGAGE: &str = "baggage";
/// The baggage member that carries the key.
pub const MEMBER: &str = "cove-preview";

/// Whether `key` may be set on a request as it is: not empty, and only
/// what a baggage value may hold unencoded (visible ASCII but `"`, `,`,
/// `;`, `\`). Preview names are far narrower.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"\",;\\".contains(&b))
}

/// Optional whitespace (RFC 9110 OWS, and W3C Baggage's `ows`).
fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    &v[start..end.max(start)]
}

/// The key an `X-Cove-Preview` value gives: the value trimmed, when it is
/// not empty and is UTF-8.
pub fn header_key(value: &[u8]) -> Option<&str> {
    let v = trim(value);
    if v.is_empty() {
        return None;
    }
    std::str::from_utf8(v).ok()
}

/// The members of a `baggage` value: `(key, value)` trimmed, properties
/// (after `;`) left out, and the member as sent (trimmed) for rewriting.
fn members(value: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], &[u8])> {
    value.split(|b| *b == b',').filter_map(|m| {
        let whole = trim(m);
        if whole.is_empty() {
            return None;
        }
        let pair = whole.split(|b| *b == b';').next().unwrap_or(whole);
        let eq = pair.iter().position(|b| *b == b'=');
        let (k, v) = match eq {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[..0]),
        };
        Some((trim(k), trim(v), whole))
    })
}

/// The key a `baggage` value gives: its `cove-preview` member's value, when
/// it is not empty and is UTF-8.
pub fn baggage_key(value: &[u8]) -> Option<&str> {
    members(value)
        .find(|(k, _, _)| *k == MEMBER.as_bytes())
        .and_then(|(_, v, _)| (!v.is_empty()).then_some(v))
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// A request's key from its `X-Cove-Preview` values (`header`) and its
/// `baggage` values: the first non-empty `X-Cove-Preview`, else the first
/// `cove-preview` member.
pub fn request_key<'a>(
    header: impl IntoIterator<Item = &'a [u8]>,
    baggage: impl IntoIterator<Item = &'a [u8]>,
) -> Option<&'a str> {
    header
        .into_iter()
        .find_map(header_key)
        .or_else(|| baggage.into_iter().find_map(baggage_key))
}

/// A `baggage` value for a request routed by `key`: the members of the
/// client's `baggage` values but `cove-preview` ones, in order, then
/// `cove-preview=KEY`.
pub fn baggage_with<'a>(client: impl IntoIterator<Item = &'a [u8]>, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for v in client {
        for (k, _, whole) in members(v) {
            if k != MEMBER.as_bytes() {
                out.extend_from_slice(whole);
                out.push(b',');
            }
        }
    }
    out.extend_from_slice(MEMBER.as_bytes());
    out.push(b'=');
    out.extend_from_slice(key.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_baggage_and_empty_values_are_no_key() {
        let key = |h: &[&str], b: &[&str]| {
            request_key(
                h.iter().map(|v| v.as_bytes()),
                b.iter().map(|v| v.as_bytes()),
            )
            .map(str::to_string)
        };
        assert_eq!(key(&["feat"], &["cove-preview=other"]), Some("feat".into()));
        assert_eq!(key(&[" feat\t"], &[]), Some("feat".into()));
        assert_eq!(key(&[""], &["cove-preview=b"]), Some("b".into()));
        assert_eq!(key(&[], &[]), None);
        assert_eq!(key(&["  "], &["cove-preview="]), None);
        assert_eq!(
            key(&[], &["userId=alice, cove-preview = feat-2 ;prop=1 , x=y"]),
            Some("feat-2".into())
        );
        assert_eq!(
            key(&[], &["userId=alice", "cove-preview=second"]),
            Some("second".into()),
            "any baggage field"
        );
        assert_eq!(
            key(&[], &["my-cove-preview=x,cove-previewx=y"]),
            None,
            "whole member keys only"
        );
    }

    #[test]
    fn keys_that_cannot_be_sent_are_told() {
        assert!(valid_key("feat-1.x_y"));
        for bad in ["", "a b", "a,b", "a;b", "a\r\nx: y", "é"] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_set_key_replaces_the_clients_member_and_keeps_the_others() {
        let b = |vals: &[&str], k: &str| {
            String::from_utf8(baggage_with(vals.iter().map(|v| v.as_bytes()), k)).unwrap()
        };
        assert_eq!(b(&[], "feat"), "cove-preview=feat");
        assert_eq!(
            b(&["a=1, cove-preview=evil;p ,b=2;q=3", "c=3"], "feat"),
            "a=1,b=2;q=3,c=3,cove-preview=feat"
        );
    }
}
