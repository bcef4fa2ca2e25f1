//! `node-events`: an EventBridge rule on the Auto Scaling groups' instance events (source
//! `aws.autoscaling`) invokes it; each launch, termination and lifecycle hook wait becomes a
//! document in Elasticsearch, so the cluster's history of node joins and departures is searchable
//! beside its logs.
//!
//! The document's id is the EventBridge event id: EventBridge delivers at least once, and a
//! redelivered event is stored once. Events of other sources or types are answered "ignored"
//! (an error would only make EventBridge retry them); an Auto Scaling instance event without its
//! instance or group is an error, so that it shows in the function's error metrics.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::{json, Value};

use crate::es::{EsClient, EsError, Indexed};

/// The index events go to unless `NODE_EVENTS_INDEX` says otherwise.
pub const DEFAULT_INDEX: &str = "node-events";

/// The EventBridge `source` of Auto Scaling's events.
pub const SOURCE: &str = "aws.autoscaling";

/// The instance events this function records (`detail-type`), with the transition and the
/// result they stand for. The EventBridge rule matches exactly these.
pub const DETAIL_TYPES: [(&str, &str, &str); 6] = [
    ("EC2 Instance Launch Successful", "launch", "successful"),
    ("EC2 Instance Launch Unsuccessful", "launch", "unsuccessful"),
    (
        "EC2 Instance Terminate Successful",
        "terminate",
        "successful",
    ),
    (
        "EC2 Instance Terminate Unsuccessful",
        "terminate",
        "unsuccessful",
    ),
    (
        "EC2 Instance-launch Lifecycle Action",
        "launch",
        "waiting-on-hook",
    ),
    (
        "EC2 Instance-terminate Lifecycle Action",
        "terminate",
        "waiting-on-hook",
    ),
];

/// What became of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A node event to store under `id`.
    Node {
        /// The EventBridge event id.
        id: String,
        /// The document.
        doc: Value,
    },
    /// Not an Auto Scaling instance event.
    Ignored(String),
}

/// Why an event could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum NodeEventError {
    /// An Auto Scaling instance event that lacks what identifies the node.
    #[error("{detail_type} event {id}: {problems}")]
    Malformed {
        /// The event's `detail-type`.
        detail_type: String,
        /// The event's id.
        id: String,
        /// Every missing field.
        problems: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] EsError),
}

fn text(detail: &Value, field: &str) -> Option<String> {
    detail
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Reads an event into the document to store (pure).
pub fn record(event: &EventBridgeEvent<Value>) -> Result<Record, NodeEventError> {
    if event.source != SOURCE {
        return Ok(Record::Ignored(format!(
            "source {:?} is not {SOURCE}",
            event.source
        )));
    }
    let Some(&(_, transition, result)) = DETAIL_TYPES
        .iter()
        .find(|(t, _, _)| *t == event.detail_type)
    else {
        return Ok(Record::Ignored(format!(
            "{:?} is not an instance launch or termination",
            event.detail_type
        )));
    };
    let detail = &event.detail;
    let id = event.id.clone().unwrap_or_default();
    let mut problems = Vec::new();
    if id.is_empty() {
        problems.push("id: missing");
    }
    let instance = text(detail, "EC2InstanceId");
    if instance.is_none() {
        problems.push("detail.EC2InstanceId: missing");
    }
    let group = text(detail, "AutoScalingGroupName");
    if group.is_none() {
        problems.push("detail.AutoScalingGroupName: missing");
    }
    if !problems.is_empty() {
        return Err(NodeEventError::Malformed {
            detail_type: event.detail_type.clone(),
            id,
            problems: problems.join("; "),
        });
    }
    let details = detail.get("Details");
    let detail_text = |field: &str| details.and_then(|d| text(d, field));
    let doc = json!({
        "transition": transition,
        "result": result,
        "instance_id": instance,
        "group": group,
        "availability_zone": detail_text("Availability Zone"),
        "subnet_id": detail_text("Subnet ID"),
        "activity_id": text(detail, "ActivityId"),
        "status_code": text(detail, "StatusCode"),
        "status_message": text(detail, "StatusMessage"),
        "cause": text(detail, "Cause"),
        "description": text(detail, "Description"),
        "lifecycle_hook": text(detail, "LifecycleHookName"),
        "lifecycle_transition": text(detail, "LifecycleTransition"),
        "started_at": text(detail, "StartTime"),
        "ended_at": text(detail, "EndTime"),
        "time": event.time.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "region": event.region,
        "account": event.account,
        "detail_type": event.detail_type,
        "event_id": id,
    });
    Ok(Record::Node { id, doc })
}

/// Handles one event: record it in `index` through `es`; the answer says what was done.
pub async fn handle(
    event: &EventBridgeEvent<Value>,
    es: &EsClient,
    index: &str,
) -> Result<Value, NodeEventError> {
    match record(event)? {
        Record::Ignored(reason) => {
            tracing::info!(detail_type = %event.detail_type, %reason, "ignored");
            Ok(json!({ "ignored": reason }))
        }
        Record::Node { id, doc } => {
            let stored = match es.create(index, &id, &doc).await? {
                Indexed::Created => "created",
                Indexed::AlreadyThere => "already-there",
            };
            tracing::info!(
                %id, transition = %doc["transition"], instance = %doc["instance_id"], stored,
                "recorded"
            );
            Ok(json!({ "recorded": id, "stored": stored }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_es::FakeEs;

    fn fixture(name: &str) -> EventBridgeEvent<Value> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn launch_and_terminate_events_become_node_documents() {
        let Record::Node { id, doc } =
            record(&fixture("example-autoscaling-event-launch-successful.json")).unwrap()
        else {
            panic!("not recorded")
        };
        assert_eq!(id, "12345678-1234-1234-1234-123456789012");
        assert_eq!(doc["transition"], "launch");
        assert_eq!(doc["result"], "successful");
        assert_eq!(doc["instance_id"], "i-1234567890abcdef0");
        assert_eq!(doc["group"], "my-auto-scaling-group");
        assert_eq!(doc["availability_zone"], "us-west-2b");
        assert_eq!(doc["subnet_id"], "subnet-12345678");
        assert_eq!(doc["time"], "1970-01-01T00:00:00Z");
        assert_eq!(doc["region"], "us-west-2");

        let Record::Node { doc, .. } = record(&fixture(
            "example-autoscaling-event-terminate-successful.json",
        ))
        .unwrap() else {
            panic!("not recorded")
        };
        assert_eq!(
            (doc["transition"].as_str(), doc["result"].as_str()),
            (Some("terminate"), Some("successful"))
        );

        let Record::Node { doc, .. } =
            record(&fixture("example-autoscaling-event-terminate-action.json")).unwrap()
        else {
            panic!("not recorded")
        };
        assert_eq!(doc["result"], "waiting-on-hook");
        assert_eq!(doc["lifecycle_hook"], "my-lifecycle-hook");
        assert_eq!(
            doc["lifecycle_transition"],
            "autoscaling:EC2_INSTANCE_TERMINATING"
        );
        assert_eq!(doc["group"], "my-asg");
        assert!(doc["availability_zone"].is_null());
    }

    #[test]
    fn other_events_are_ignored_and_incomplete_ones_are_errors() {
        // an EC2 state change (another source)
        let ec2 = fixture("example-eventbridge-event-obj.json");
        assert!(matches!(record(&ec2).unwrap(), Record::Ignored(r) if r.contains("aws.ec2")));
        // an Auto Scaling event of another type
        let mut other = fixture("example-autoscaling-event-launch-successful.json");
        other.detail_type = "EC2 Auto Scaling Instance Refresh Started".into();
        assert!(matches!(record(&other).unwrap(), Record::Ignored(_)));

        let mut broken = fixture("example-autoscaling-event-launch-successful.json");
        let detail = broken.detail.as_object_mut().unwrap();
        detail.remove("EC2InstanceId");
        detail.remove("AutoScalingGroupName");
        let err = record(&broken).unwrap_err().to_string();
        assert!(
            err.contains("detail.EC2InstanceId: missing; detail.AutoScalingGroupName: missing"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn handle_indexes_by_event_id_once() {
        let es = FakeEs::start().await;
        let client = EsClient::new(&format!("http://localhost:{}", es.port())).unwrap();
        let launch = fixture("example-autoscaling-event-launch-successful.json");
        let answer = handle(&launch, &client, DEFAULT_INDEX).await.unwrap();
        assert_eq!(
            answer,
            json!({"recorded": "12345678-1234-1234-1234-123456789012", "stored": "created"})
        );
        let again = handle(&launch, &client, DEFAULT_INDEX).await.unwrap();
        assert_eq!(again["stored"], "already-there");
        let ignored = handle(
            &fixture("example-eventbridge-event-obj.json"),
            &client,
            DEFAULT_INDEX,
        )
        .await
        .unwrap();
        assert!(ignored.get("ignored").is_some());
        let got = es.requests();
        assert_eq!(got.len(), 2, "the ignored event reached the store");
        assert_eq!(
            got[0].path,
            "/node-events/_create/12345678-1234-1234-1234-123456789012"
        );
        assert_eq!(got[0].body["instance_id"], "i-1234567890abcdef0");

        es.fail_with(503);
        let err = handle(&launch, &client, DEFAULT_INDEX).await.unwrap_err();
        assert!(
            matches!(
                err,
                NodeEventError::Store(EsError::Status { status: 503, .. })
            ),
            "{err}"
        );
    }
}
