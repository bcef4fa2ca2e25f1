//! The Elasticsearch client the functions index with: one `PUT /<index>/_create/<id>` per event
//! over plain HTTP/1.1.
//!
//! The store runs inside the VPC and answers on `http://` (the production stack's Elasticsearch
//! service), so the client carries no TLS stack. Host names are resolved by hickory (pure Rust,
//! reading `/etc/resolv.conf` and `/etc/hosts`), never by the C library: the artifact is a static
//! glibc binary, and a static glibc's `getaddrinfo` would need the NSS modules of the glibc it was
//! linked with at run time.
//!
//! Credentials in `ES_URL` (`http://user:password@host:9200`) become a basic-auth header; the URL
//! itself is never printed: [`EsClient`]'s `Debug` and every [`EsError`] name only the host.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hickory_resolver::TokioResolver;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one indexing request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an event could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// `ES_URL` is missing or not an `http://host[:port][/prefix]` URL.
    #[error("ES_URL: {0}")]
    Config(String),
    /// The system's resolver configuration could not be read.
    #[error("DNS resolver configuration (/etc/resolv.conf): {0}")]
    Resolver(String),
    /// The request did not complete (name resolution, connection, timeout).
    #[error("Elasticsearch at {host}: {reason}")]
    Unreachable {
        /// The store's host and port (never its credentials).
        host: String,
        /// What failed.
        reason: String,
    },
    /// The store answered with an error status.
    #[error("Elasticsearch at {host} answered {status} to {what}: {body}")]
    Status {
        /// The store's host and port.
        host: String,
        /// The HTTP status.
        status: u16,
        /// The request (method and path, no credentials).
        what: String,
        /// The start of the answer's body.
        body: String,
    },
}

/// What the store did with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexed {
    /// The document is new (201 Created).
    Created,
    /// A document with this id was already there (409): a redelivered event, stored once.
    AlreadyThere,
}

/// A resolver for hyper's connector that asks hickory instead of the C library.
#[derive(Clone)]
pub struct HickoryResolve(Arc<TokioResolver>);

impl HickoryResolve {
    /// A resolver configured from `/etc/resolv.conf` (and `/etc/hosts`).
    pub fn from_system() -> Result<Self, EsError> {
        let builder =
            TokioResolver::builder_tokio().map_err(|e| EsError::Resolver(e.to_string()))?;
        Ok(HickoryResolve(Arc::new(builder.build())))
    }
}

impl tower_service::Service<Name> for HickoryResolve {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = hickory_resolver::ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.0.clone();
        Box::pin(async move {
            let found = resolver.lookup_ip(name.as_str()).await?;
            // the connector sets the URL's port on each address
            let addrs: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(addrs.into_iter())
        })
    }
}

/// A client for one Elasticsearch endpoint.
#[derive(Clone)]
pub struct EsClient {
    scheme_authority: String,
    host: String,
    prefix: String,
    authorization: Option<String>,
    client: Client<HttpConnector<HickoryResolve>, Full<Bytes>>,
}

impl std::fmt::Debug for EsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsClient")
            .field("host", &self.host)
            .field("prefix", &self.prefix)
            .field(
                "credentials",
                &self.authorization.as_ref().map(|_| "(redacted)"),
            )
            .finish()
    }
}

impl EsClient {
    /// The client for the store the environment names: `ES_URL`
    /// (`http://[user:password@]host[:port][/prefix]`), or else `ES_HOST` (a host name, such as
    /// an internal load balancer's DNS name, which a stack can only pass as a whole value) with
    /// `ES_PORT` (9200 when unset). When the URL carries no credentials, `ES_PASSWORD` (a
    /// secret variable, with `ES_USERNAME`, `elastic` when unset) gives them.
    pub fn from_env() -> Result<Self, EsError> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`EsClient::from_env`] with the variables from `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, EsError> {
        let url = match (var("ES_URL"), var("ES_HOST")) {
            (Some(url), _) => url,
            (None, Some(host)) => {
                let port = var("ES_PORT").unwrap_or_else(|| "9200".into());
                format!("http://{host}:{port}")
            }
            (None, None) => {
                return Err(EsError::Config(
                    "not set (the store's http:// URL; or ES_HOST, with ES_PORT)".into(),
                ))
            }
        };
        let mut parsed = parse_url(&url)?;
        if parsed.authorization.is_none() {
            if let Some(password) = var("ES_PASSWORD") {
                let user = var("ES_USERNAME").unwrap_or_else(|| "elastic".into());
                parsed.authorization = Some(basic(format!("{user}:{password}").as_bytes()));
            }
        }
        Self::from_parsed(parsed)
    }

    /// The client for `url`: `http://[user:password@]host[:port][/prefix]`.
    pub fn new(url: &str) -> Result<Self, EsError> {
        Self::from_parsed(parse_url(url)?)
    }

    fn from_parsed(parsed: ParsedUrl) -> Result<Self, EsError> {
        let mut connector = HttpConnector::new_with_resolver(HickoryResolve::from_system()?);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(EsClient {
            scheme_authority: format!("http://{}", parsed.host),
            host: parsed.host,
            prefix: parsed.prefix,
            authorization: parsed.authorization,
            client,
        })
    }

    /// The host and port requests go to (for messages; no credentials).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Stores `doc` in `index` under `id`, once: `PUT /<index>/_create/<id>`. A second delivery of
    /// the same event finds the id taken (409) and reports [`Indexed::AlreadyThere`].
    pub async fn create(
        &self,
        index: &str,
        id: &str,
        doc: &serde_json::Value,
    ) -> Result<Indexed, EsError> {
        let path = format!("{}/{}/_create/{}", self.prefix, index, encode_segment(id));
        let what = format!("PUT {path}");
        let uri: Uri = format!("{}{}", self.scheme_authority, path)
            .parse()
            .map_err(|e| EsError::Config(format!("bad request path {path:?}: {e}")))?;
        let mut request = Request::builder()
            .method(Method::PUT)
            .uri(uri)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(auth) = &self.authorization {
            request = request.header(hyper::header::AUTHORIZATION, auth);
        }
        let body = serde_json::to_vec(doc).expect("a JSON value serialises");
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| EsError::Config(e.to_string()))?;
        let unreachable = |reason: String| EsError::Unreachable {
            host: self.host.clone(),
            reason,
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                // hyper's error chain names the failing step (dns, connect), never the URL's userinfo
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    reason.push_str(": ");
                    reason.push_str(&s.to_string());
                    source = s.source();
                }
                unreachable(reason)
            })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, EsError>((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {REQUEST_TIMEOUT:?}")))??;
        match status {
            StatusCode::OK | StatusCode::CREATED => Ok(Indexed::Created),
            StatusCode::CONFLICT => Ok(Indexed::AlreadyThere),
            other => Err(EsError::Status {
                host: self.host.clone(),
                status: other.as_u16(),
                what,
                body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            }),
        }
    }
}

struct ParsedUrl {
    host: String,
    prefix: String,
    authorization: Option<String>,
}

/// Splits `http://[user:password@]host[:port][/prefix]`. Errors never repeat the URL (it may hold
/// a password).
fn parse_url(url: &str) -> Result<ParsedUrl, EsError> {
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err(EsError::Config(
            "https:// is not supported: the functions reach the store inside the VPC over http:// and carry no TLS stack".into(),
        ));
    } else {
        return Err(EsError::Config("must start with http://".into()));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(EsError::Config("has no host".into()));
    }
    if host.parse::<hyper::http::uri::Authority>().is_err() {
        return Err(EsError::Config(format!("bad host {host:?}")));
    }
    if path.contains(['?', '#']) {
        return Err(EsError::Config(format!(
            "the path of the URL of {host} may not carry a query or a fragment"
        )));
    }
    let authorization = userinfo.map(|u| basic(&percent_decode(u)));
    Ok(ParsedUrl {
        host: host.to_string(),
        prefix: path.trim_end_matches('/').to_string(),
        authorization,
    })
}

/// A basic-auth header value for `user:password`.
fn basic(credentials: &[u8]) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Percent-encodes a document id for a path segment (ids are ours, but stay safe).
fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_es::FakeEs;

    #[test]
    fn urls_split_and_never_echo_credentials() {
        let p = parse_url("http://elastic:s3cr%40t@elasticsearch:9200/").unwrap();
        assert_eq!(p.host, "elasticsearch:9200");
        assert_eq!(p.prefix, "");
        // base64("elastic:s3cr@t")
        assert_eq!(
            p.authorization.as_deref(),
            Some("Basic ZWxhc3RpYzpzM2NyQHQ=")
        );
        let p = parse_url("http://es.internal/proxy/es").unwrap();
        assert_eq!(
            (p.host.as_str(), p.prefix.as_str()),
            ("es.internal", "/proxy/es")
        );
        assert!(p.authorization.is_none());

        for (bad, says) in [
            ("https://user:hunter2@es:9200", "https:// is not supported"),
            ("ftp://user:hunter2@es", "must start with http://"),
            ("http://user:hunter2@", "has no host"),
            ("http://user:hunter2@es:9200/x?q=1", "may not carry a query"),
        ] {
            let err = parse_url(bad).err().expect(bad).to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(
                !err.contains("hunter2"),
                "{bad}: the password leaked: {err}"
            );
        }
    }

    #[test]
    fn the_environment_gives_a_url_or_a_host_and_the_password_apart() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let from = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            EsClient::from_vars(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        };
        // a load balancer's DNS name as ES_HOST, the password as its own secret variable
        let c = from(&[
            ("ES_HOST", "internal-es-123.elb.amazonaws.com"),
            ("ES_PASSWORD", "hunter2"),
        ])
        .unwrap();
        assert_eq!(c.host(), "internal-es-123.elb.amazonaws.com:9200");
        // base64("elastic:hunter2")
        assert_eq!(
            c.authorization.as_deref(),
            Some("Basic ZWxhc3RpYzpodW50ZXIy")
        );
        let c = from(&[
            ("ES_HOST", "es"),
            ("ES_PORT", "9201"),
            ("ES_USERNAME", "ingest"),
            ("ES_PASSWORD", "pw"),
        ])
        .unwrap();
        assert_eq!(c.host(), "es:9201");
        // base64("ingest:pw")
        assert_eq!(c.authorization.as_deref(), Some("Basic aW5nZXN0OnB3"));
        // ES_URL wins over ES_HOST; its own credentials over ES_PASSWORD
        let c = from(&[
            ("ES_URL", "http://u:p@store:9200"),
            ("ES_HOST", "other"),
            ("ES_PASSWORD", "hunter2"),
        ])
        .unwrap();
        assert_eq!(c.host(), "store:9200");
        // base64("u:p")
        assert_eq!(c.authorization.as_deref(), Some("Basic dTpw"));
        let c = from(&[("ES_HOST", "es")]).unwrap();
        assert!(c.authorization.is_none());
        let err = from(&[("ES_PASSWORD", "hunter2")])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("ES_URL: not set"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_redacts_credentials() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client =
            rt.block_on(async { EsClient::new("http://elastic:hunter2@es:9200").unwrap() });
        let shown = format!("{client:?}");
        assert!(
            shown.contains("es:9200") && shown.contains("(redacted)"),
            "{shown}"
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("ZWxhc3RpYzpodW50ZXIy"),
            "{shown}"
        );
    }

    #[test]
    fn ids_are_encoded_as_one_path_segment() {
        assert_eq!(encode_segment("LV7fzho-PHcEJPw="), "LV7fzho-PHcEJPw%3D");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }

    #[tokio::test]
    async fn create_puts_the_document_by_host_name_with_basic_auth() {
        let es = FakeEs::start().await;
        // `localhost` goes through hickory (not getaddrinfo) to the server bound to 127.0.0.1
        let url = format!("http://elastic:hunter2@localhost:{}/", es.port());
        let client = EsClient::new(&url).unwrap();
        let doc = serde_json::json!({"event": "signup"});
        assert_eq!(
            client.create("analytics", "id-1", &doc).await.unwrap(),
            Indexed::Created
        );
        assert_eq!(
            client.create("analytics", "id-1", &doc).await.unwrap(),
            Indexed::AlreadyThere
        );
        let got = es.requests();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].method, "PUT");
        assert_eq!(got[0].path, "/analytics/_create/id-1");
        assert_eq!(
            got[0].authorization.as_deref(),
            Some("Basic ZWxhc3RpYzpodW50ZXIy")
        );
        assert_eq!(got[0].body, doc);
    }

    #[tokio::test]
    async fn error_statuses_and_dead_stores_are_errors_without_the_password() {
        let es = FakeEs::start().await;
        es.fail_with(503);
        let client = EsClient::new(&format!("http://u:hunter2@127.0.0.1:{}", es.port())).unwrap();
        let err = client
            .create("i", "x", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, EsError::Status { status: 503, .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"));

        // a port nobody listens on: the listener is dropped before the request
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = EsClient::new(&format!("http://u:hunter2@127.0.0.1:{port}")).unwrap();
        let err = client
            .create("i", "x", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, EsError::Unreachable { .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
