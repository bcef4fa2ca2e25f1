//! The `node-events` Lambda function (EventBridge: Auto Scaling instance events → Elasticsearch);
//! see `infra_functions::node_events`. Environment: the store (`ES_URL`, or `ES_HOST` with
//! `ES_PASSWORD`: see `EsClient::from_env`), `NODE_EVENTS_INDEX` (default `node-events`).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use infra_functions::{es::EsClient, node_events};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    infra_functions::init_logging();
    let es = EsClient::from_env().map_err(|e| {
        // stops the process before its first event: Lambda reports an init failure with this
        tracing::error!(error = %e, "cannot start");
        Error::from(e.to_string())
    })?;
    let index =
        std::env::var("NODE_EVENTS_INDEX").unwrap_or_else(|_| node_events::DEFAULT_INDEX.into());
    tracing::info!(store = es.host(), %index, "node-events ready");
    let (es, index) = (&es, index.as_str());
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            Ok::<_, Error>(node_events::handle(&event.payload, es, index).await?)
        },
    ))
    .await
}
