//! A stand-in for Elasticsearch in the unit tests: an HTTP/1.1 server on 127.0.0.1 that answers
//! `PUT /<index>/_create/<id>` like the store (201 the first time, 409 for a taken id) and keeps
//! what it was sent.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) authorization: Option<String>,
    pub(crate) body: serde_json::Value,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    ids: HashSet<String>,
    fail_with: Option<u16>,
}

pub(crate) struct FakeEs {
    port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeEs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeEs {
    pub(crate) async fn start() -> FakeEs {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeEs { port, state, task }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub(crate) fn fail_with(&self, status: u16) {
        self.state.lock().unwrap().fail_with = Some(status);
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_string());
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let mut state = state.lock().unwrap();
    state.received.push(Received {
        method,
        path: path.clone(),
        authorization,
        body,
    });
    let (status, text) = if let Some(status) = state.fail_with {
        (status, r#"{"error":"unavailable"}"#.to_string())
    } else if state.ids.insert(path.clone()) {
        (201, r#"{"result":"created"}"#.to_string())
    } else {
        (
            409,
            r#"{"error":{"type":"version_conflict_engine_exception"}}"#.to_string(),
        )
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(text)))
        .unwrap())
}
