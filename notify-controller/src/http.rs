//! The HTTP side of sending: one client per Provider (timeout, CA bundle, proxy, redirects that
//! are re-checked, optionally no private targets), and the redaction that keeps tokens, webhook
//! URLs and credentials out of every error, log line, event and status.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

/// Most redirects followed per send.
const MAX_REDIRECTS: usize = 5;

/// How a client reaches its targets.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Per-request timeout.
    pub timeout: Duration,
    /// PEM CA bundle trusted in addition to the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Proxy for every request.
    pub proxy: Option<Url>,
    /// Refuse loopback, private and link-local targets, also after redirects and DNS.
    pub block_private: bool,
}

/// Why a client could not be built; the text names the offending setting, never its value.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA bundle is not PEM.
    #[error("the CA bundle (ca.crt) is not a PEM certificate: {0}")]
    Certificate(String),
    /// The proxy address is refused.
    #[error("the proxy address is not an http(s) URL")]
    Proxy,
    /// reqwest refused the configuration.
    #[error("building the HTTP client: {0}")]
    Build(String),
}

/// A client for one Provider.
pub fn client(options: &ClientOptions) -> Result<reqwest::Client, ClientError> {
    let block_private = options.block_private;
    // Redirects are followed only to the same origin, and only when they keep the method and
    // body (307, 308): a new host would get the headers that carry credentials, and a 301-303
    // would turn the POST into a GET that "succeeds" without delivering anything.
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let status = attempt.status();
        if !matches!(status.as_u16(), 307 | 308) {
            return attempt.error(format!("a {status} redirect would drop the message body"));
        }
        let same_origin = attempt
            .previous()
            .last()
            .is_some_and(|from| from.origin() == attempt.url().origin());
        if !same_origin {
            return attempt.error("a redirect to another host is refused");
        }
        match check_target(attempt.url(), block_private) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    });
    let mut builder = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout.min(Duration::from_secs(10)))
        .redirect(redirects)
        // The previous URL (a webhook's secret path) must not travel in a Referer.
        .referer(false)
        .user_agent(concat!("eddy-notify-controller/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &options.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| ClientError::Certificate(e.to_string()))?;
        if certs.is_empty() {
            return Err(ClientError::Certificate("no certificate found".into()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    // The environment's proxy settings apply only when the Provider names none.
    if let Some(proxy) = &options.proxy {
        if !matches!(proxy.scheme(), "http" | "https") {
            return Err(ClientError::Proxy);
        }
        builder = builder.proxy(reqwest::Proxy::all(proxy.clone()).map_err(|_| ClientError::Proxy)?);
    }
    if block_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
        // A proxy from the environment would resolve names itself, past the check above.
        if options.proxy.is_none() {
            builder = builder.no_proxy();
        }
    }
    builder
        .build()
        .map_err(|e| ClientError::Build(e.without_url().to_string()))
}

/// Whether `url` may be sent to: http(s) only, and with `block_private` no literal private
/// address (names are checked when they resolve, by [`PublicOnly`]).
pub fn check_target(url: &Url, block_private: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} refused: only http and https", url.scheme()));
    }
    let Some(host) = url.host_str() else {
        return Err("the address has no host".into());
    };
    if block_private {
        if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
            return Err("a loopback address is refused (--block-private-addresses)".into());
        }
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>()
            && is_private(ip)
        {
            return Err(format!(
                "{} address {ip} is refused (--block-private-addresses)",
                kind_of(ip)
            ));
        }
    }
    Ok(())
}

/// Loopback, private (RFC 1918, unique local), link-local, unspecified, CGNAT or
/// IPv4-mapped forms of them.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            let first = segments[0];
            // NAT64 (64:ff9b::/96) and IPv4-compatible (::a.b.c.d) addresses embed an IPv4
            // address; 6to4 (2002::/16) embeds one in its next 32 bits.
            let embedded = if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0; 6] {
                Some(std::net::Ipv4Addr::from(
                    ((segments[6] as u32) << 16) | segments[7] as u32,
                ))
            } else if first == 0x2002 {
                Some(std::net::Ipv4Addr::from(
                    ((segments[1] as u32) << 16) | segments[2] as u32,
                ))
            } else {
                None
            };
            if let Some(v4) = embedded.filter(|v4| !v4.is_unspecified() && *v4 != std::net::Ipv4Addr::new(0, 0, 0, 1)) {
                return is_private(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
        }
    }
}

fn kind_of(ip: IpAddr) -> &'static str {
    if ip.is_loopback() {
        "loopback"
    } else {
        "private or link-local"
    }
}

/// A DNS resolver that drops private answers, so that neither a name nor a redirect nor a
/// rebinding DNS server can point a send inside the cluster.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.iter().copied().filter(|a| !is_private(a.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves only to private or loopback addresses (--block-private-addresses)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Replaces secrets in text: every registered secret value, and any URL's path, query and
/// credentials (a webhook URL's path is its secret).
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

/// What replaces a secret.
pub const MASK: &str = "***";

impl Redactor {
    /// Adds a value to mask; short values (under 4 characters) are ignored, as masking them
    /// would garble ordinary text.
    pub fn add(&mut self, secret: &str) {
        // The forms a secret takes in answers and errors: as given, percent-decoded,
        // percent-encoded, and JSON-escaped (`/` as `\/`).
        let decoded = percent_encoding::percent_decode_str(secret)
            .decode_utf8_lossy()
            .into_owned();
        let encoded = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).to_string();
        for form in [secret.to_owned(), decoded, encoded, secret.replace('/', "\\/")] {
            if form.len() >= 4 && !self.secrets.contains(&form) {
                self.secrets.push(form);
            }
        }
        // Longest first, so that a secret containing another is masked whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Adds an address: the whole URL, its credentials, query values and longer path segments
    /// (a webhook's path is its credential).
    pub fn add_address(&mut self, address: &Url) {
        self.add(address.as_str());
        self.add(address.path());
        if let Some(password) = address.password() {
            self.add(password);
        }
        if !address.username().is_empty() {
            self.add(address.username());
        }
        if let Some(query) = address.query() {
            self.add(query);
        }
        for (_, value) in address.query_pairs() {
            self.add(&value);
        }
        for segment in address.path_segments().into_iter().flatten() {
            if segment.len() >= 8 {
                self.add(segment);
            }
        }
    }

    /// `text` with every secret masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        mask_urls(&out)
    }
}

/// `scheme://host[:port]/***`: where a send went, without what makes the address a secret.
pub fn masked_address(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    if url.path() != "/" || url.query().is_some() {
        shown.push('/');
        shown.push_str(MASK);
    }
    shown
}

/// Masks every http(s) URL found in `text` as [`masked_address`] does.
fn mask_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = [
        find_ignoring_case(rest, "http://"),
        find_ignoring_case(rest, "https://"),
    ]
    .into_iter()
    .flatten()
    .min()
    {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | '<' | ','))
            .unwrap_or(candidate.len());
        match Url::parse(&candidate[..end]) {
            Ok(url) => out.push_str(&masked_address(&url)),
            Err(_) => out.push_str(MASK),
        }
        rest = &candidate[end..];
    }
    out.push_str(rest);
    out
}

fn find_ignoring_case(text: &str, needle: &str) -> Option<usize> {
    text.as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_masked() {
        let mut redactor = Redactor::default();
        redactor.add_address(
            &Url::parse("https://user:p%40ss@hooks.example.com/services/T0/B0/SeCrEtPath?token=Q%2FSECRET").unwrap(),
        );
        for leak in [
            "answer: https:\\/\\/hooks.example.com\\/services\\/T0\\/B0\\/SeCrEtPath",
            "token Q/SECRET in the query",
            "password p@ss",
            "HTTPS://HOOKS.EXAMPLE.COM/services/T0/B0/SeCrEtPath",
            "SeCrEtPath alone",
        ] {
            let clean = redactor.redact(leak);
            assert!(
                !clean.contains("SeCrEt") && !clean.contains("SECRET") && !clean.contains("p@ss"),
                "{leak} -> {clean}"
            );
        }
    }

    #[test]
    fn secrets_and_url_paths_never_survive_redaction() {
        let mut redactor = Redactor::default();
        redactor.add("xoxb-SECRET-token");
        redactor.add("ab");
        let text = "POST https://user:pw@hooks.slack.com/services/T0/B0/SECRET?x=1 failed: token xoxb-SECRET-token refused (ab)";
        let clean = redactor.redact(text);
        assert_eq!(clean, "POST https://hooks.slack.com/*** failed: token *** refused (ab)");
        assert!(!clean.contains("SECRET") && !clean.contains("pw"));
        assert_eq!(
            redactor.redact("connect to http://127.0.0.1:8080 refused"),
            "connect to http://127.0.0.1:8080 refused"
        );
    }

    #[test]
    fn private_targets_are_refused_only_when_asked() {
        let url = |s: &str| Url::parse(s).unwrap();
        for private in [
            "http://127.0.0.1/x",
            "http://10.1.2.3/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://localhost:9090/",
            "http://[64:ff9b::a00:1]/",
            "http://[2002:a00:1::]/",
            "http://198.18.0.1/",
            "http://240.0.0.1/",
            "http://192.0.0.8/",
        ] {
            assert!(check_target(&url(private), true).is_err(), "{private}");
            assert!(check_target(&url(private), false).is_ok(), "{private}");
        }
        assert!(check_target(&url("https://8.8.8.8/"), true).is_ok());
        assert!(check_target(&url("https://[2606:4700::1111]/"), true).is_ok());
        assert!(check_target(&url("https://hooks.slack.com/services/x"), true).is_ok());
        let err = check_target(&url("file:///etc/passwd"), false).unwrap_err();
        assert!(err.contains("only http and https"), "{err}");
    }
}
