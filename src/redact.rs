//! Secrets that must never reach a log, a cache entry or a package: the
//! values of a recipe's `secrets`, and the passwords and tokens in channel
//! URLs. They are registered once and masked wherever kiln prints or
//! writes text (the UI, build logs, error reports, rendered recipes).

use std::borrow::Cow;
use std::sync::RwLock;

use url::Url;

/// What a masked secret looks like.
pub const MASK: &str = "********";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Values shorter than this are not masked: they would mask ordinary text
/// (a secret `1` would hide every digit 1), and are no secret anyway.
pub const MIN_SECRET_LEN: usize = 4;

/// Mask `value` from now on. A multi-line value is also masked line by
/// line (output is shown a line at a time).
pub fn register(value: &str) {
    let mut new: Vec<String> = Vec::new();
    if value.trim().len() >= MIN_SECRET_LEN {
        new.push(value.to_string());
    }
    if value.contains('\n') {
        new.extend(
            value
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= MIN_SECRET_LEN)
                .map(str::to_string),
        );
    }
    if new.is_empty() {
        return;
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for v in new {
        if !all.contains(&v) {
            all.push(v);
        }
    }
    // Longest first, so a secret containing another is masked whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn mask(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), MASK));
        }
    }
    out
}

/// Mask every string inside a JSON value.
pub fn mask_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Cow::Owned(m) = mask(s) {
                *s = m;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(mask_json),
        _ => {}
    }
}

/// Register the password and `/t/<token>/` of a channel argument (a URL or
/// anything else; only URLs carry credentials).
pub fn register_url(text: &str) {
    let Ok(url) = Url::parse(text) else {
        return;
    };
    if let Some(p) = url.password() {
        register(p);
        // The percent-decoded form is what a client sends and may print.
        let decoded = url::form_urlencoded::parse(format!("x={p}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        register(&decoded);
    }
    // A token given as the user name (`https://ghp_…@github.com/…`); a
    // short name such as `git` is an account, not a secret.
    if url.password().is_none() && url.username().len() >= 12 {
        register(url.username());
    }
    // Signed or token-carrying query values (`?token=…`, `X-Amz-Signature=…`).
    for (_, value) in url.query_pairs() {
        if value.len() >= 12 {
            register(&value);
        }
    }
    // `/t/<token>/`, usually first in the path (behind a proxy, maybe later).
    let segments: Vec<&str> = url.path_segments().into_iter().flatten().collect();
    for pair in segments.windows(2) {
        if pair[0] == "t" && !pair[1].is_empty() {
            register(pair[1]);
        }
    }
}

/// A URL as written into files: without user, password, token or query.
pub fn url_for_file(url: &Url) -> String {
    rattler_redaction::strip_url_for_serialization(url).to_string()
}

/// A URL as shown to the user: password and token masked.
pub fn url_for_display(url: &Url) -> String {
    rattler_redaction::redact_url_for_display(url, MASK)
        .unwrap_or_else(|| url.clone())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_urls_and_multiline_values() {
        register_url("https://user:s3cret-pass@example.org/t/tok-123456/chan");
        assert_eq!(
            mask("from https://user:s3cret-pass@example.org/t/tok-123456/chan"),
            format!("from https://user:{MASK}@example.org/t/{MASK}/chan")
        );
        register("-----BEGIN KEY-----\nAAAAline-one\nBBBBline-two\n-----END KEY-----");
        assert_eq!(mask("x BBBBline-two y"), format!("x {MASK} y"));
        let url = Url::parse("https://user:pw@example.org/t/tok/chan").unwrap();
        assert_eq!(url_for_file(&url), "https://example.org/chan");
        assert_eq!(
            url_for_display(&url),
            format!("https://user:{MASK}@example.org/t/{MASK}/chan")
        );
    }
}
