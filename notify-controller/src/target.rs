//! A Provider resolved for sending: its Secret's address, token, credentials, headers and proxy
//! read and checked, its HTTP client built, and every secret value registered with the
//! [`Redactor`]. Resolving is what the Provider's reconcile checks and what each send uses
//! (cached per Provider version and Secret version).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use eddy_api::notify::{Provider, ProviderType};

use crate::http::{self, ClientOptions, Redactor};

/// A Provider ready to send.
#[derive(Clone, Debug)]
pub struct Target {
    /// `namespace/name` of the Provider.
    pub key: String,
    /// The Provider's type.
    pub provider_type: ProviderType,
    /// The Provider's UID, part of commit-status contexts.
    pub uid: String,
    /// Where to send.
    pub address: Url,
    /// Channel or room.
    pub channel: Option<String>,
    /// Name to send as.
    pub username: Option<String>,
    /// Bearer or API token.
    pub token: Option<String>,
    /// Basic-auth credentials.
    pub basic: Option<(String, String)>,
    /// Extra headers from the Secret.
    pub headers: HeaderMap,
    /// The client (timeout, CA, proxy, redirect checks).
    pub client: reqwest::Client,
    /// Masks this Provider's secrets.
    pub redactor: Arc<Redactor>,
    /// Refuse private targets.
    pub block_private: bool,
}

impl Target {
    /// The address as it may be shown.
    pub fn shown_address(&self) -> String {
        http::masked_address(&self.address)
    }
}

/// Why a Provider cannot send; the text is safe to show (values are never included).
#[derive(Debug, thiserror::Error)]
pub enum InvalidProvider {
    /// The referenced Secret is missing.
    #[error("Secret {namespace}/{name} not found")]
    SecretNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The Secret could not be read.
    #[error("reading Secret {namespace}/{name}: {reason}")]
    SecretUnreadable {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API's answer.
        reason: String,
    },
    /// No address in the spec or Secret.
    #[error("no address: set spec.address or the Secret's address key")]
    NoAddress,
    /// The address does not parse or is refused.
    #[error("the address is refused: {0}")]
    BadAddress(String),
    /// A type that needs a token has none.
    #[error("a {0} Provider needs a token in its Secret (key token)")]
    NoToken(&'static str),
    /// A type that needs a channel has none.
    #[error("a {0} Provider needs spec.channel ({1})")]
    NoChannel(&'static str, &'static str),
    /// The headers key is not a YAML map of valid headers.
    #[error("the Secret's headers key is not a map of valid HTTP headers: {0}")]
    Headers(String),
    /// The Secret's key is not UTF-8.
    #[error("the Secret's {0} key is not UTF-8 text")]
    NotText(&'static str),
    /// Building the client failed.
    #[error(transparent)]
    Client(#[from] http::ClientError),
}

impl InvalidProvider {
    /// Whether waiting (for a Secret to appear) may fix it; otherwise the spec or Secret must change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            InvalidProvider::SecretNotFound { .. } | InvalidProvider::SecretUnreadable { .. }
        )
    }
}

/// The type's name as the spec spells it.
pub fn type_name(provider_type: ProviderType) -> &'static str {
    match provider_type {
        ProviderType::Slack => "slack",
        ProviderType::Discord => "discord",
        ProviderType::Msteams => "msteams",
        ProviderType::Matrix => "matrix",
        ProviderType::Generic => "generic",
        ProviderType::GenericHmac => "generic-hmac",
        ProviderType::Github => "github",
        ProviderType::Gitlab => "gitlab",
        ProviderType::Grafana => "grafana",
    }
}

/// Reads what `provider` refers to and builds its Target.
pub async fn resolve(client: &Client, provider: &Provider, block_private: bool) -> Result<Target, InvalidProvider> {
    let namespace = provider.namespace().unwrap_or_default();
    let secret = match &provider.spec.secret_ref {
        Some(reference) => read_secret(client, &namespace, &reference.name).await?,
        None => BTreeMap::new(),
    };
    let ca = match &provider.spec.cert_secret_ref {
        Some(reference) => read_secret(client, &namespace, &reference.name).await?.remove("ca.crt"),
        None => None,
    };
    build(provider, &secret, ca, block_private)
}

/// Builds a Target from a Provider and its Secret's data: a pure check apart from the client.
pub fn build(
    provider: &Provider,
    secret: &BTreeMap<String, Vec<u8>>,
    ca_pem: Option<Vec<u8>>,
    block_private: bool,
) -> Result<Target, InvalidProvider> {
    let spec = &provider.spec;
    let provider_type = spec.provider_type;
    let name = type_name(provider_type);
    let text = |key: &'static str| -> Result<Option<String>, InvalidProvider> {
        secret
            .get(key)
            .map(|bytes| {
                String::from_utf8(bytes.clone())
                    .map(|s| s.trim().to_owned())
                    .map_err(|_| InvalidProvider::NotText(key))
            })
            .transpose()
            .map(|value| value.filter(|v| !v.is_empty()))
    };
    let mut redactor = Redactor::default();
    let address = text("address")?
        .or_else(|| spec.address.clone())
        .ok_or(InvalidProvider::NoAddress)?;
    redactor.add(&address);
    let address = Url::parse(&address).map_err(|e| InvalidProvider::BadAddress(e.to_string()))?;
    // A webhook URL's path and query are its credential.
    redactor.add_address(&address);
    http::check_target(&address, block_private).map_err(InvalidProvider::BadAddress)?;
    let token = text("token")?;
    let username = text("username")?;
    let password = text("password")?;
    for value in [&token, &password].into_iter().flatten() {
        redactor.add(value);
    }
    let proxy = text("proxy")?.or_else(|| spec.proxy.clone());
    if let Some(proxy) = proxy.as_deref().and_then(|p| Url::parse(p).ok()) {
        redactor.add_address(&proxy);
    }
    let proxy = proxy
        .map(|p| Url::parse(&p).map_err(|_| http::ClientError::Proxy))
        .transpose()?;
    let headers = match text("headers")? {
        Some(yaml) => parse_headers(&yaml, &mut redactor)?,
        None => HeaderMap::new(),
    };
    match provider_type {
        ProviderType::Github | ProviderType::Gitlab | ProviderType::Matrix if token.is_none() => {
            return Err(InvalidProvider::NoToken(name));
        }
        ProviderType::Matrix if spec.channel.is_none() => {
            return Err(InvalidProvider::NoChannel(name, "the room id"));
        }
        ProviderType::GenericHmac if token.is_none() => return Err(InvalidProvider::NoToken(name)),
        _ => {}
    }
    let basic = match (username.clone(), password) {
        (Some(user), Some(password)) => Some((user, password)),
        _ => None,
    };
    let timeout = spec
        .timeout
        .to_std()
        .map_err(|e| InvalidProvider::BadAddress(e.to_string()))?;
    let client = http::client(&ClientOptions {
        timeout,
        ca_pem,
        proxy,
        block_private,
    })?;
    Ok(Target {
        key: format!("{}/{}", provider.namespace().unwrap_or_default(), provider.name_any()),
        provider_type,
        uid: provider.uid().unwrap_or_default(),
        address,
        channel: spec.channel.clone(),
        username: spec.username.clone().or(username.filter(|_| basic.is_none())),
        token,
        basic,
        headers,
        client,
        redactor: Arc::new(redactor),
        block_private,
    })
}

async fn read_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, InvalidProvider> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(secret)) => Ok(secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, value.0))
            .chain(
                secret
                    .string_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, value)| (key, value.into_bytes())),
            )
            .collect()),
        Ok(None) => Err(InvalidProvider::SecretNotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        Err(err) => Err(InvalidProvider::SecretUnreadable {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            reason: err.to_string(),
        }),
    }
}

/// The Secret's `headers`: a YAML map of header names to values. Values are registered as
/// secrets, since they are usually credentials.
fn parse_headers(yaml: &str, redactor: &mut Redactor) -> Result<HeaderMap, InvalidProvider> {
    let map: BTreeMap<String, String> =
        serde_saphyr::from_str(yaml).map_err(|_| InvalidProvider::Headers("not a YAML map of strings".into()))?;
    let mut headers = HeaderMap::new();
    for (name, value) in map {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| InvalidProvider::Headers(format!("{name:?} is not a header name")))?;
        let mut parsed = HeaderValue::from_str(&value)
            .map_err(|_| InvalidProvider::Headers(format!("the value of {name} is not a header value")))?;
        parsed.set_sensitive(true);
        redactor.add(&value);
        // `Bearer <token>`, `Basic <base64>`: the credential alone too.
        if let Some(last) = value.split_whitespace().last() {
            redactor.add(last);
        }
        headers.insert(header, parsed);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(yaml: &str) -> Provider {
        let mut provider: Provider = serde_saphyr::from_str(yaml).unwrap();
        provider.metadata.namespace = Some("shop".into());
        provider.metadata.name = Some("chat".into());
        provider
    }

    fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    const SLACK: &str = "apiVersion: notify.eddy.dev/v1alpha1\nkind: Provider\nmetadata: {}\nspec:\n  type: slack\n";

    #[test]
    fn the_secrets_address_wins_and_is_masked() {
        eddy_runtime::install_crypto_provider();
        let target = build(
            &provider(&format!("{SLACK}  address: https://example.invalid/spec\n")),
            &secret(&[("address", "https://hooks.slack.com/services/T0/B0/MARKER")]),
            None,
            false,
        )
        .unwrap();
        assert_eq!(target.address.as_str(), "https://hooks.slack.com/services/T0/B0/MARKER");
        assert_eq!(target.shown_address(), "https://hooks.slack.com/***");
        let said = target.redactor.redact("sending to /services/T0/B0/MARKER failed");
        assert!(!said.contains("MARKER"), "{said}");
    }

    #[test]
    fn headers_come_from_the_secret_and_are_masked() {
        eddy_runtime::install_crypto_provider();
        let target = build(
            &provider(&format!("{SLACK}  address: https://example.com/hook\n")),
            &secret(&[("headers", "X-Api-Key: MARKER-KEY\nX-Team: shop\n")]),
            None,
            false,
        )
        .unwrap();
        assert_eq!(target.headers["x-api-key"], "MARKER-KEY");
        assert!(!target.redactor.redact("key MARKER-KEY").contains("MARKER"));
        let err = build(
            &provider(&format!("{SLACK}  address: https://example.com/hook\n")),
            &secret(&[("headers", "- a list\n")]),
            None,
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("headers key"), "{err}");
    }

    #[test]
    fn missing_parts_are_named() {
        eddy_runtime::install_crypto_provider();
        let err = build(&provider(SLACK), &BTreeMap::new(), None, false).unwrap_err();
        assert!(err.to_string().contains("no address"), "{err}");
        let matrix = "apiVersion: notify.eddy.dev/v1alpha1\nkind: Provider\nmetadata: {}\nspec:\n  type: matrix\n  address: https://matrix.example.com\n";
        let err = build(&provider(matrix), &BTreeMap::new(), None, false).unwrap_err();
        assert!(err.to_string().contains("needs a token"), "{err}");
        let err = build(&provider(matrix), &secret(&[("token", "t0ken")]), None, false).unwrap_err();
        assert!(err.to_string().contains("spec.channel"), "{err}");
        let file = format!("{SLACK}  address: file:///etc/passwd\n");
        let err = build(&provider(&file), &BTreeMap::new(), None, false).unwrap_err();
        assert!(err.to_string().contains("only http and https"), "{err}");
        let local = format!("{SLACK}  address: http://127.0.0.1:9/x\n");
        assert!(build(&provider(&local), &BTreeMap::new(), None, true).is_err());
        let err = build(&provider(&local), &BTreeMap::new(), Some(b"garbage".to_vec()), false).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }
}
