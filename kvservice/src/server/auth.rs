//! Client authentication (`requirepass` and `AUTH`), as Redis does it for its single
//! `default` user: the password is compared in time that does not depend on it, and a
//! connection that has not authenticated may send only small requests and only the
//! commands that lead to authentication.

use crate::resp::Limits;

/// Most arguments a request may have before its connection authenticates (Redis: 10).
pub(crate) const PRE_AUTH_MAX_ARGS: usize = 10;
/// Largest argument before authentication, in bytes (Redis: 16 KiB).
pub(crate) const PRE_AUTH_MAX_BULK: usize = 16 << 10;
/// Largest request a connection buffers before it authenticates: its arguments at
/// their limit plus their headers.
pub(crate) const PRE_AUTH_REQUEST_BYTES: usize = PRE_AUTH_MAX_ARGS * (PRE_AUTH_MAX_BULK + 32);

/// The only user, as in Redis without ACLs.
const DEFAULT_USER: &[u8] = b"default";

/// Redis's replies.
pub(crate) const NOAUTH: &str = "NOAUTH Authentication required.";
pub(crate) const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub(crate) const NO_PASSWORD_SET: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

/// The parser limits for a connection that has not authenticated yet.
pub(crate) fn pre_auth_limits(base: Limits) -> Limits {
    Limits {
        max_bulk_bytes: base.max_bulk_bytes.min(PRE_AUTH_MAX_BULK),
        max_array_len: base.max_array_len.min(PRE_AUTH_MAX_ARGS),
        ..base
    }
}

/// Commands a connection may send before it authenticates (the rest get `-NOAUTH`).
/// `HELLO` answers `-NOAUTH` itself unless it carries `AUTH`.
pub(crate) fn allowed_before_auth(name: &[u8]) -> bool {
    [&b"auth"[..], b"hello", b"quit"]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
}

/// Checks `user` (None: `default`) and `password` against the configured password.
/// `Err` carries the error reply. Without a configured password the `default` user
/// takes any password, as Redis's `nopass` default user does, but the one-argument
/// form (`AUTH password`) is an error, as in Redis.
pub(crate) fn check(
    required: Option<&str>,
    user: Option<&[u8]>,
    password: &[u8],
) -> Result<(), &'static str> {
    let Some(required) = required else {
        return match user {
            None => Err(NO_PASSWORD_SET),
            Some(DEFAULT_USER) => Ok(()),
            Some(_) => Err(WRONGPASS),
        };
    };
    let user_ok = user.is_none_or(|u| u == DEFAULT_USER);
    // Both comparisons always run, so the time spent says nothing about which failed.
    let password_ok = constant_time_eq(password, required.as_bytes());
    if user_ok & password_ok {
        Ok(())
    } else {
        Err(WRONGPASS)
    }
}

/// Compares an attempt with the secret in time that depends only on the attempt's
/// length (which the sender knows), not on the secret or on where they differ.
fn constant_time_eq(attempt: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(attempt.len() != secret.len());
    if secret.is_empty() {
        return attempt.is_empty();
    }
    for (i, &b) in attempt.iter().enumerate() {
        diff |= b ^ secret[i % secret.len()];
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cres", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret!", b"s3cret"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        // A repetition of the secret is not the secret.
        assert!(!constant_time_eq(b"s3crets3cret", b"s3cret"));
        assert!(!constant_time_eq(b"", b"s3cret"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"x", b""));
    }

    #[test]
    fn auth_checks_user_and_password() {
        assert_eq!(check(Some("pw"), None, b"pw"), Ok(()));
        assert_eq!(check(Some("pw"), Some(b"default"), b"pw"), Ok(()));
        assert_eq!(check(Some("pw"), Some(b"admin"), b"pw"), Err(WRONGPASS));
        assert_eq!(check(Some("pw"), None, b"nope"), Err(WRONGPASS));
        assert_eq!(check(None, None, b"pw"), Err(NO_PASSWORD_SET));
        assert_eq!(check(None, Some(b"default"), b"anything"), Ok(()));
        assert_eq!(check(None, Some(b"admin"), b"pw"), Err(WRONGPASS));
    }

    #[test]
    fn pre_auth_limits_only_tighten() {
        let l = pre_auth_limits(Limits::DEFAULT);
        assert_eq!(l.max_array_len, PRE_AUTH_MAX_ARGS);
        assert_eq!(l.max_bulk_bytes, PRE_AUTH_MAX_BULK);
        let small = Limits {
            max_bulk_bytes: 100,
            ..Limits::DEFAULT
        };
        assert_eq!(pre_auth_limits(small).max_bulk_bytes, 100);
        assert!(allowed_before_auth(b"AUTH") && allowed_before_auth(b"quit"));
        assert!(allowed_before_auth(b"Hello"));
        assert!(!allowed_before_auth(b"ping") && !allowed_before_auth(b"get"));
    }
}
