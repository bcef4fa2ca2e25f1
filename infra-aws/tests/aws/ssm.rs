//! SSM parameters on moto: what a parameter looks like in AWS after apply (type, value, tags),
//! a no-op re-plan, in-place updates of a plain value, a secret value (planned and shown by
//! digest only), a description and tags, drift made by hand (a secret changed by hand is found,
//! by its digest), deletes, the create of a name that is taken (the stack's own parameter is
//! converged, anyone else's is refused and left alone), and a retried create after a lost
//! response. A SecureString's value never appears in a plan (text or JSON), a report or an error.
//! (Logs: `tests/safety/secrets.rs` runs the deploy program with an SSM SecureString at trace
//! level and searches everything it prints.)

use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging};
use infra_aws::*;
use infra_core::dsl::{Resource, ResourceSpec, Stack};
use infra_core::plan::Action;
use infra_core::provider::{ErrorClass, OpContext, Provider, Resolved};
use infra_core::reconcile::NoObserver;
use infra_core::render::{plan_json, plan_text, report_text};

use crate::support::{action, apply, assert_noop, destroy, fields, moto, plan, unique, Moto};

struct Values {
    region: &'static str,
    token: String,
    zones: Vec<&'static str>,
    description: &'static str,
    team: &'static str,
}

fn stack(name: &str, v: &Values) -> Stack {
    let mut s = Stack::new(name);
    s.add(
        SsmParameter::string("region", &format!("/infra/{name}/region"))
            .value(v.region)
            .description(v.description)
            .tag("team", v.team),
    );
    s.add(
        SsmParameter::string_list("zones", &format!("/infra/{name}/zones"))
            .values(v.zones.iter().copied()),
    );
    s.add(
        SsmParameter::secure_string("token", &format!("/infra/{name}/swarm/token"))
            .value(v.token.clone()),
    );
    s
}

async fn get(m: &Moto, name: &str) -> aws_sdk_ssm::types::Parameter {
    m.ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetParameter {name}: {e:?}"))
        .parameter()
        .expect("a parameter")
        .clone()
}

async fn tags(m: &Moto, name: &str) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = m
        .ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .unwrap()
        .tag_list()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    t.sort();
    t
}

/// Neither the plan's text nor its JSON holds `secret`, and the text shows the field redacted.
fn assert_redacted(p: &infra_core::engine::Planned, secret: &str, step: &str) {
    let text = plan_text(&p.plan);
    let json = plan_json(&p.plan);
    assert!(
        !text.contains(secret),
        "{step}: the secret is in the plan:\n{text}"
    );
    assert!(
        !json.contains(secret),
        "{step}: the secret is in the JSON plan"
    );
    assert!(
        text.contains("secure_value") && text.contains("(sensitive"),
        "{step}: the plan shows the secret field redacted:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_parameters_are_created_updated_and_deleted_and_secrets_stay_redacted() {
    let Some(m) =
        moto("ssm_parameters_are_created_updated_and_deleted_and_secrets_stay_redacted").await
    else {
        return;
    };
    let engine = m.engine();
    let name = unique("ssm");
    let mut v = Values {
        region: "us-east-1",
        token: format!("SWMTKN-1-{}-first", unique("tok")),
        zones: vec!["us-east-1a", "us-east-1b"],
        description: "where the stack runs",
        team: "platform",
    };
    let s = stack(&name, &v);
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_ssm_parameter.token"), Action::Create);
    assert_redacted(&p, &v.token, "create");
    let (_, report) = apply(&engine, &s).await;
    assert!(!report_text(&report).contains(&v.token));
    assert_noop(&engine, &s, "after create").await;

    // What AWS holds.
    let token = get(&m, &format!("/infra/{name}/swarm/token")).await;
    assert_eq!(token.r#type(), Some(&ParameterType::SecureString));
    assert_eq!(token.value(), Some(v.token.as_str()));
    let region = get(&m, &format!("/infra/{name}/region")).await;
    assert_eq!(region.r#type(), Some(&ParameterType::String));
    assert_eq!(region.value(), Some("us-east-1"));
    let zones = get(&m, &format!("/infra/{name}/zones")).await;
    assert_eq!(zones.r#type(), Some(&ParameterType::StringList));
    assert_eq!(zones.value(), Some("us-east-1a,us-east-1b"));
    let t = tags(&m, &format!("/infra/{name}/region")).await;
    for want in [
        ("infra:stack", name.as_str()),
        ("infra:id", "aws_ssm_parameter.region"),
        ("team", "platform"),
    ] {
        assert!(
            t.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {t:?}"
        );
    }
    // The read never holds the secret: only its digest.
    let read = m.provider.read(&name).await.unwrap();
    let dump = format!("{:?}", read.resources);
    assert!(!dump.contains(&v.token), "the read holds the secret");
    assert!(dump.contains("sha256:"), "{dump}");

    // A new secret value: an in-place update, shown by digest only.
    let old_token = std::mem::replace(&mut v.token, format!("SWMTKN-1-{}-second", unique("tok")));
    let s = stack(&name, &v);
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_ssm_parameter.token"), Action::Update);
    assert_eq!(fields(&p, "aws_ssm_parameter.token"), ["secure_value"]);
    assert_redacted(&p, &v.token, "rotation");
    assert!(!plan_text(&p.plan).contains(&old_token));
    let report = engine.apply(&p, &NoObserver).await.unwrap();
    assert!(report.is_success(), "{}", report_text(&report));
    assert!(!report_text(&report).contains(&v.token));
    assert_noop(&engine, &s, "after the rotation").await;
    let token = get(&m, &format!("/infra/{name}/swarm/token")).await;
    assert_eq!(token.value(), Some(v.token.as_str()));

    // Drift: the secret changed by hand is found (by digest) and put back.
    let by_hand = format!("hand-made-{}", unique("x"));
    m.ssm
        .put_parameter()
        .name(format!("/infra/{name}/swarm/token"))
        .value(&by_hand)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let p = plan(&engine, &s).await;
    assert_eq!(fields(&p, "aws_ssm_parameter.token"), ["secure_value"]);
    assert_redacted(&p, &by_hand, "drift");
    assert!(!plan_text(&p.plan).contains(&v.token));
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after repairing the secret").await;
    assert_eq!(
        get(&m, &format!("/infra/{name}/swarm/token")).await.value(),
        Some(v.token.as_str())
    );

    // Plain values, a description and a tag change in place.
    v.region = "eu-west-1";
    v.zones = vec!["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    v.description = "where the stack runs now";
    v.team = "infra";
    let s = stack(&name, &v);
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_ssm_parameter.region"), Action::Update);
    assert_eq!(
        fields(&p, "aws_ssm_parameter.region"),
        ["description", "tags", "value"]
    );
    assert_eq!(fields(&p, "aws_ssm_parameter.zones"), ["value"]);
    assert!(p
        .plan
        .change("aws_ssm_parameter.token")
        .is_none_or(|c| c.action == Action::NoOp));
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the updates").await;
    assert_eq!(
        get(&m, &format!("/infra/{name}/region")).await.value(),
        Some("eu-west-1")
    );
    assert_eq!(
        get(&m, &format!("/infra/{name}/zones")).await.value(),
        Some("eu-west-1a,eu-west-1b,eu-west-1c")
    );
    let t = tags(&m, &format!("/infra/{name}/region")).await;
    assert!(t.contains(&("team".into(), "infra".into())), "{t:?}");

    // A new name replaces the parameter; a parameter no longer declared is deleted.
    let mut s = Stack::new(&name);
    s.add(
        SsmParameter::string("region", &format!("/infra/{name}/where"))
            .value(v.region)
            .description(v.description)
            .tag("team", v.team),
    );
    s.add(
        SsmParameter::secure_string("token", &format!("/infra/{name}/swarm/token"))
            .value(v.token.clone()),
    );
    let p = plan(&engine, &s).await;
    assert_eq!(
        action(&p, "aws_ssm_parameter.region"),
        Action::DeleteThenCreate
    );
    assert_eq!(action(&p, "aws_ssm_parameter.zones"), Action::Delete);
    let text = plan_text(&p.plan);
    assert!(!text.contains(&v.token), "{text}");
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the replacement").await;
    let gone = m
        .ssm
        .get_parameter()
        .name(format!("/infra/{name}/zones"))
        .send()
        .await;
    assert!(gone.is_err(), "the zones parameter is deleted");
    assert_eq!(
        get(&m, &format!("/infra/{name}/where")).await.value(),
        Some("eu-west-1")
    );

    // A destroy plan lists the secret by digest only.
    let p = engine
        .plan(
            &s,
            &infra_core::plan::PlanOptions {
                destroy: true,
                allow_destroy_all: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!plan_text(&p.plan).contains(&v.token));
    assert!(!plan_json(&p.plan).contains(&v.token));
    destroy(&m, &engine, &s).await;
}

fn resolved(spec: ResourceSpec) -> Resolved {
    Resolved {
        address: spec.address.clone(),
        schema: spec.schema,
        props: spec.props.clone(),
        protect: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_parameter_name_is_adopted_when_the_stacks_and_refused_otherwise() {
    let Some(m) =
        moto("a_taken_parameter_name_is_adopted_when_the_stacks_and_refused_otherwise").await
    else {
        return;
    };
    let p = m.provider.as_ref();
    let stack = unique("ssmadopt");
    let ctx = |attempt| OpContext {
        stack: stack.clone(),
        idempotency_token: format!("infra-test-{stack}"),
        attempt,
    };
    let path = format!("/infra/{stack}/swarm/init");
    let first_secret = format!("first-{}", unique("s"));
    let second_secret = format!("second-{}", unique("s"));
    let spec = |value: &str| {
        resolved(
            SsmParameter::secure_string("init", &path)
                .value(value)
                .into_spec(),
        )
    };

    // The first create made the parameter; a second create of the same name (its response was
    // lost, so the reconciler's next attempt starts over) hits ParameterAlreadyExists, finds the
    // stack's parameter by its tags and converges it to the declared value.
    let a = p.create(&ctx(1), &spec(&first_secret)).await.unwrap();
    let b = p.create(&ctx(1), &spec(&second_secret)).await.unwrap();
    assert_eq!(a.id, path);
    assert_eq!(b.id, path);
    assert_eq!(get(&m, &path).await.value(), Some(second_secret.as_str()));
    // A retried attempt looks up first and converges without a create.
    let c = p.create(&ctx(2), &spec(&second_secret)).await.unwrap();
    assert_eq!(c.id, path);
    let read = p.read(&stack).await.unwrap();
    assert_eq!(
        read.resources.len(),
        1,
        "one parameter: {:?}",
        read.resources
    );
    assert!(read.resources[0].props.contains_key("arn"));
    p.delete(&ctx(1), &read.resources[0]).await.unwrap();
    let again = p.delete(&ctx(1), &read.resources[0]).await.unwrap_err();
    assert_eq!(again.class, ErrorClass::NotFound, "{again}");

    // A name taken by a parameter that isn't the stack's: refused, never overwritten, and the
    // error names the stack but not the value.
    let theirs = format!("/infra/{stack}/theirs");
    m.ssm
        .put_parameter()
        .name(&theirs)
        .value("someone else's")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let mut s = Stack::new(&stack);
    s.add(SsmParameter::secure_string("theirs", &theirs).value(first_secret.clone()));
    let engine = m.engine();
    let planned = plan(&engine, &s).await;
    assert_eq!(action(&planned, "aws_ssm_parameter.theirs"), Action::Create);
    let report = engine.apply(&planned, &NoObserver).await.unwrap();
    assert!(!report.is_success());
    let text = report_text(&report);
    assert!(text.contains("aws_ssm_parameter.theirs"), "{text}");
    assert!(text.contains("ParameterAlreadyExists"), "{text}");
    assert!(
        text.contains(&format!("not owned by stack `{stack}`")),
        "{text}"
    );
    assert!(!text.contains(&first_secret), "{text}");
    assert_eq!(get(&m, &theirs).await.value(), Some("someone else's"));
    let read = p.read(&stack).await.unwrap();
    assert!(read.resources.is_empty(), "{:?}", read.resources);
    m.ssm.delete_parameter().name(&theirs).send().await.unwrap();
}
