//! Counting API calls: one SDK interceptor shared by the EC2, Auto Scaling, IAM and SSM clients.
//!
//! Every HTTP request (each retry attempt included) is counted once, by operation. A read runs
//! inside a task-local scope so that its own calls are counted apart from calls that other tasks
//! make concurrently on the same provider.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Calls by operation (`ec2.DescribeVpcs`), and their total.
#[derive(Debug, Default)]
pub(crate) struct CallCounter {
    total: AtomicU64,
    by_operation: Mutex<BTreeMap<String, u64>>,
}

impl CallCounter {
    fn record(&self, operation: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut m = self.by_operation.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(operation.to_string()).or_default() += 1;
    }

    /// The total so far.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// A snapshot of the counts by operation.
    pub(crate) fn by_operation(&self) -> BTreeMap<String, u64> {
        self.by_operation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

tokio::task_local! {
    /// The counter of the read running in this task, if any.
    static SCOPE: Arc<CallCounter>;
}

/// Runs `fut` with its API calls also counted in `counter`.
pub(crate) async fn scoped<F: std::future::Future>(counter: Arc<CallCounter>, fut: F) -> F::Output {
    SCOPE.scope(counter, fut).await
}

/// The interceptor: counts each request just before it is sent.
#[derive(Debug, Clone)]
pub(crate) struct CountCalls(pub(crate) Arc<CallCounter>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "infra-aws-call-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| {
                // `Auto Scaling` → `autoscaling`, as in the API's endpoint name.
                let service: String = m.service().chars().filter(|c| !c.is_whitespace()).collect();
                format!("{}.{}", service.to_ascii_lowercase(), m.name())
            })
            .unwrap_or_else(|| "unknown".to_string());
        self.0.record(&operation);
        let _ = SCOPE.try_with(|s| s.record(&operation));
        Ok(())
    }
}
