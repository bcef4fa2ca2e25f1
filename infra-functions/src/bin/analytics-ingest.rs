//! The `analytics-ingest` Lambda function (API Gateway HTTP API → Elasticsearch); see
//! `infra_functions::analytics`. Environment: the store, as `ES_URL`
//! (`http://[user:pw@]host:port`) or `ES_HOST` [+ `ES_PORT`], with `ES_PASSWORD` [+ `ES_USERNAME`]
//! (see `EsClient::from_env`); `ANALYTICS_INDEX` (default `analytics-events`).

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use infra_functions::{analytics, es::EsClient};
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
        std::env::var("ANALYTICS_INDEX").unwrap_or_else(|_| analytics::DEFAULT_INDEX.into());
    tracing::info!(store = es.host(), %index, "analytics-ingest ready");
    let (es, index) = (&es, index.as_str());
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            let response: ApiGatewayV2httpResponse =
                analytics::handle(&event.payload, es, index, &event.context.request_id).await;
            Ok::<_, Error>(response)
        },
    ))
    .await
}
