//! The `htu` comparison of RFC 9449 §4.3 (step 9): the request URI without its query and
//! fragment, compared after RFC 3986 syntax-based (§6.2.2: case, percent-encoding, dot segments)
//! and scheme-based (§6.2.3: default port, empty path) normalisation of both sides.

/// Longest URI compared (bytes); longer ones never match.
pub const MAX_URI_LEN: usize = 4096;

/// Normalizes an absolute `http` or `https` URI and drops its query and fragment: scheme and
/// host in lower case, the default port (and an empty one) removed, percent-encodings in upper
/// case and decoded where they stand for an unreserved character, other printable characters
/// outside RFC 3986's path set percent-encoded, dot segments removed, an empty path as `/`.
///
/// `None` when it is not such a URI: relative, another scheme, user information, a bad port or
/// host, a broken percent-encoding, control characters, spaces or non-ASCII.
pub fn normalize(uri: &str) -> Option<String> {
    if uri.len() > MAX_URI_LEN || uri.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return None;
    }
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = tail.get(..path_end)?;
    let authority = normalize_authority(authority, default_port)?;
    let path = normalize_path(path)?;
    Some(format!("{scheme}://{authority}{path}"))
}

/// Normalizes `fhir.publicBaseUrl`: an absolute `http`/`https` URL without query or fragment,
/// returned normalized and without a trailing `/` (so that request paths are appended to it).
pub fn normalize_base(url: &str) -> Option<String> {
    if url.contains(['?', '#']) {
        return None;
    }
    let normalized = normalize(url)?;
    Some(normalized.trim_end_matches('/').to_owned())
}

/// The normalized URI a proof's `htu` must name for a request.
///
/// With `public_base` (the normalized `fhir.publicBaseUrl`): that URL followed by the part of the
/// request path below `base_path` (`None` when the path is not below it). Without: the scheme of
/// the downstream connection (`https` when it is TLS), the `:authority` and the `:path`. Query
/// and fragment are dropped in both cases.
pub fn expected(
    public_base: Option<&str>,
    base_path: &str,
    tls: bool,
    authority: &str,
    path: &str,
) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match public_base {
        Some(base) => {
            let rest = path.strip_prefix(base_path)?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            normalize(&format!("{base}{rest}"))
        }
        None => {
            if !path.starts_with('/') || authority.is_empty() {
                return None;
            }
            let scheme = if tls { "https" } else { "http" };
            normalize(&format!("{scheme}://{authority}{path}"))
        }
    }
}

/// `host[:port]` in lower case without the scheme's default port. No user information.
fn normalize_authority(authority: &str, default_port: u16) -> Option<String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(inner) => {
            let close = inner.find(']')?;
            let literal = inner.get(..close)?;
            if literal.is_empty()
                || !literal
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return None;
            }
            let after = inner.get(close + 1..)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (authority.get(..close + 2)?, port)
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    // No `@` in the set: user information is refused here; an empty host below.
    let reg_name_ok = host.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'[' | b']' | b':')
    });
    let bracketed = host.starts_with('[');
    if host.is_empty() || !reg_name_ok || (!bracketed && host.contains(['[', ']', ':'])) {
        return None;
    }
    let host = host.to_ascii_lowercase();
    let port = match port {
        None | Some("") => None,
        Some(p) => {
            if p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u32 = p.parse().ok()?;
            if n > u32::from(u16::MAX) {
                return None;
            }
            (n != u32::from(default_port)).then_some(n)
        }
    };
    Some(match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// Percent-encoding normalisation, then dot-segment removal; `/` for an empty path.
fn normalize_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("/".to_owned());
    }
    if !path.starts_with('/') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value)?;
            let lo = bytes.get(i + 2).copied().and_then(hex_value)?;
            let decoded = hi << 4 | lo;
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                push_encoded(&mut out, decoded);
            }
            i += 3;
            continue;
        }
        if is_unreserved(b) || is_path_char(b) {
            out.push(char::from(b));
        } else {
            push_encoded(&mut out, b);
        }
        i += 1;
    }
    Some(remove_dot_segments(&out))
}

/// RFC 3986 §5.2.4 for an absolute path (`/` separated, starting with `/`).
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if i == last {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn push_encoded(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(
        HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
    ));
    out.push(char::from(
        HEX.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0'),
    ));
}

/// `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The rest of `pchar` (sub-delims, `:`, `@`) and the `/` separator.
fn is_path_char(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b':'
            | b'@'
            | b'/'
    )
}

#[cfg(test)]
mod tests;
