//! The protocol's limits, checked by the front end (to fail fast) and by
//! the backend (which owns the data): keys are UTF-8 strings of 1 to 511
//! bytes, LMDB's key limit; values at most 1 MiB. Anything else is
//! `INVALID_ARGUMENT`, with a message saying which limit.

use tonic::Status;

/// Longest key, in bytes (LMDB's default maximum key size).
pub const MAX_KEY_BYTES: usize = 511;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Entries a `List` returns when it asks for none in particular.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Most entries one `List` returns.
pub const MAX_LIST_LIMIT: usize = 1000;

/// A key must be 1 to [`MAX_KEY_BYTES`] bytes.
pub fn check_key(key: &str) -> Result<(), Status> {
    if key.is_empty() {
        return Err(Status::invalid_argument("the key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Status::invalid_argument(format!(
            "the key is {} bytes; at most {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// A value must be at most [`MAX_VALUE_BYTES`] bytes.
pub fn check_value(value: &[u8]) -> Result<(), Status> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Status::invalid_argument(format!(
            "the value is {} bytes; at most {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// A `List` prefix may be empty (everything), but no longer than a key.
pub fn check_prefix(prefix: &str) -> Result<(), Status> {
    if prefix.len() > MAX_KEY_BYTES {
        return Err(Status::invalid_argument(format!(
            "the prefix is {} bytes; at most {MAX_KEY_BYTES}",
            prefix.len()
        )));
    }
    Ok(())
}

/// How many entries a `List` asking for `limit` gets: 0 means
/// [`DEFAULT_LIST_LIMIT`]; more than [`MAX_LIST_LIMIT`] is refused.
pub fn list_limit(limit: u32) -> Result<usize, Status> {
    match usize::try_from(limit) {
        Ok(0) => Ok(DEFAULT_LIST_LIMIT),
        Ok(n) if n <= MAX_LIST_LIMIT => Ok(n),
        _ => Err(Status::invalid_argument(format!(
            "the limit is {limit}; at most {MAX_LIST_LIMIT}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn keys_values_and_limits() {
        assert!(check_key("a").is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert_eq!(check_key("").unwrap_err().code(), Code::InvalidArgument);
        let long = check_key(&"k".repeat(MAX_KEY_BYTES + 1)).unwrap_err();
        assert_eq!(long.message(), "the key is 512 bytes; at most 511");
        assert!(check_value(&[]).is_ok());
        assert!(check_value(&vec![0; MAX_VALUE_BYTES]).is_ok());
        assert_eq!(
            check_value(&vec![0; MAX_VALUE_BYTES + 1])
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
        assert!(check_prefix("").is_ok());
        assert_eq!(list_limit(0).unwrap(), DEFAULT_LIST_LIMIT);
        assert_eq!(list_limit(7).unwrap(), 7);
        assert!(list_limit(1001).is_err());
    }
}
